"""Guardianship links: who may be linked, when a link stops holding, how each change is audited, the CLI."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from broker.audit import actions
from broker.audit.models import AuditEntry
from broker.cli import app as cli
from broker.db import session_scope
from broker.errors import Conflict, NotFound
from broker.identity.citizens import CitizenService
from broker.identity.guardianship import GuardianshipRefused, Guardianships
from broker.identity.models import Citizen, Guardianship
from broker.keys import Secrets
from broker.settings import Settings
from broker.timeutil import FixedClock


def _citizen(session: Session, secrets: Secrets, clock: FixedClock, born: date | None,
             email: str | None = None) -> Citizen:
    return CitizenService(session, secrets).register(
        email=email or f"{uuid.uuid4().hex}@lyon.example", name="Habitant Test", birth_date=born,
        district="lyon-3", locale="fr", now=clock.now())


def _years_ago(clock: FixedClock, years: int, days: int = 0) -> date:
    today = clock.now().date()
    return today.replace(year=today.year - years) + timedelta(days=days)


def _audited(session: Session, action: str) -> list[dict]:
    rows = session.exec(select(AuditEntry).where(AuditEntry.action == action).order_by(col(AuditEntry.seq))).all()
    return [json.loads(row.body) for row in rows]


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with session_scope(engine) as session:
        yield session


def test_a_link_is_audited_by_pseudonym_and_ends_on_the_eighteenth_birthday(
        session: Session, secrets: Secrets, clock: FixedClock) -> None:
    parent = _citizen(session, secrets, clock, date(1985, 6, 1))
    child = _citizen(session, secrets, clock, _years_ago(clock, 18, days=1))  # 18 tomorrow
    links = Guardianships(session)
    link = links.establish(parent, child, basis="registry", actor=actions.OPERATOR, now=clock.now())
    assert [w.link.id for w in links.wards(parent, clock.now().date())] == [link.id]
    assert links.linked(parent, child, clock.now().date()) and not links.linked(child, parent, clock.now().date())

    entry = _audited(session, actions.GUARDIANSHIP_ESTABLISHED)[0]
    assert entry["actor"] == "operator" and entry["subject"] == child.pseudonym
    assert entry["details"] == {"link_id": link.id, "guardian": parent.pseudonym, "basis": "registry"}
    assert child.id not in json.dumps(entry) and parent.id not in json.dumps(entry)

    clock.advance(days=1)  # nothing is written on the birthday: the link simply no longer holds
    assert links.wards(parent, clock.now().date()) == []
    assert not links.linked(parent, child, clock.now().date())
    assert session.get(Guardianship, link.id).ended_at is None
    with pytest.raises(NotFound):
        links.ward(parent, link.id, clock.now().date())


def test_only_a_known_adult_and_a_known_minor_can_be_linked(session: Session, secrets: Secrets,
                                                            clock: FixedClock) -> None:
    adult = _citizen(session, secrets, clock, date(1985, 6, 1))
    other_adult = _citizen(session, secrets, clock, date(1990, 1, 1))
    child = _citizen(session, secrets, clock, _years_ago(clock, 9))
    teenager = _citizen(session, secrets, clock, _years_ago(clock, 17))
    ageless = _citizen(session, secrets, clock, None)
    links = Guardianships(session)
    for guardian, minor in ((teenager, child), (ageless, child), (adult, other_adult), (adult, ageless),
                            (child, child)):
        with pytest.raises(GuardianshipRefused):
            links.establish(guardian, minor, basis="registry", actor=actions.OPERATOR, now=clock.now())
    with pytest.raises(GuardianshipRefused):
        links.establish(adult, child, basis="a neighbour said so", actor=actions.OPERATOR, now=clock.now())
    assert _audited(session, actions.GUARDIANSHIP_ESTABLISHED) == []

    links.establish(adult, child, basis="staff", actor=actions.OPERATOR, now=clock.now())
    with pytest.raises(Conflict):
        links.establish(adult, child, basis="registry", actor=actions.OPERATOR, now=clock.now())
    links.establish(other_adult, child, basis="registry", actor=actions.OPERATOR, now=clock.now())  # two parents


def test_an_ended_link_stays_as_history_and_may_be_made_again(session: Session, secrets: Secrets,
                                                              clock: FixedClock) -> None:
    parent = _citizen(session, secrets, clock, date(1985, 6, 1))
    child = _citizen(session, secrets, clock, _years_ago(clock, 10))
    links = Guardianships(session)
    first = links.establish(parent, child, basis="registry", actor=actions.OPERATOR, now=clock.now())
    clock.advance(days=3)
    ended = links.end(parent, child, actor=actions.OPERATOR, now=clock.now())
    assert ended.id == first.id and ended.ended_at is not None and ended.ended_by == "operator"
    assert not links.linked(parent, child, clock.now().date())
    with pytest.raises(NotFound):
        links.end(parent, child, actor=actions.OPERATOR, now=clock.now())
    [entry] = _audited(session, actions.GUARDIANSHIP_ENDED)
    assert entry["subject"] == child.pseudonym and entry["details"] == {"link_id": first.id,
                                                                       "guardian": parent.pseudonym}
    again = links.establish(parent, child, basis="registry", actor=actions.OPERATOR, now=clock.now())
    assert [row.id for row in links.links_of(child)] == [first.id, again.id]


def test_an_erased_citizen_holds_no_link(session: Session, secrets: Secrets, clock: FixedClock) -> None:
    parent = _citizen(session, secrets, clock, date(1985, 6, 1))
    child = _citizen(session, secrets, clock, _years_ago(clock, 10))
    links = Guardianships(session)
    links.establish(parent, child, basis="registry", actor=actions.OPERATOR, now=clock.now())
    child.erased_at = clock.now()
    session.add(child)
    session.flush()
    assert links.wards(parent, clock.now().date()) == []


def test_the_cli_links_lists_and_unlinks_by_email(engine: Engine, settings: Settings, secrets: Secrets,
                                                  clock: FixedClock) -> None:
    with session_scope(engine) as session:
        parent = _citizen(session, secrets, clock, date(1985, 6, 1), email="parent@lyon.example")
        # The command runs on the system clock: born eleven years before today, whatever today is.
        child = _citizen(session, secrets, clock, date.today() - timedelta(days=11 * 365),
                         email="child@lyon.example")
    env = {"BROKER_DATA_DIR": str(settings.data_dir), "BROKER_DATABASE_URL": settings.resolved_database_url(),
           "BROKER_POLICY_DIR": str(settings.policy_dir)}
    runner = CliRunner()
    emails = ["--guardian-email", "parent@lyon.example", "--minor-email", "child@lyon.example"]
    linked = runner.invoke(cli, ["guardians", "link", *emails, "--basis", "staff"], env=env)
    assert linked.exit_code == 0, linked.output
    assert child.pseudonym in linked.output and "child@" not in linked.output
    again = runner.invoke(cli, ["guardians", "link", *emails], env=env)
    assert again.exit_code == 1 and "already linked" in again.output
    unknown = runner.invoke(cli, ["guardians", "link", "--guardian-email", "nobody@lyon.example",
                                  "--minor-email", "child@lyon.example"], env=env)
    assert unknown.exit_code == 1 and "no citizen" in unknown.output

    listed = runner.invoke(cli, ["guardians", "list", "parent@lyon.example"], env=env)
    assert listed.exit_code == 0 and "guardian-of" in listed.output and child.pseudonym in listed.output
    assert listed.output.rstrip().endswith("in force"), listed.output
    assert runner.invoke(cli, ["guardians", "unlink", *emails], env=env).exit_code == 0
    after = runner.invoke(cli, ["guardians", "list", "child@lyon.example"], env=env)
    assert "ward-of" in after.output and "\tended 20" in after.output, after.output
    with session_scope(engine) as session:
        [link] = Guardianships(session).links_of(child)
        assert (link.basis, link.established_by, link.ended_by) == ("staff", "operator", "operator")
        assert [e["actor"] for e in _audited(session, actions.GUARDIANSHIP_ESTABLISHED)
                + _audited(session, actions.GUARDIANSHIP_ENDED)] == ["operator", "operator"]
    assert "parent@" not in listed.output and parent.pseudonym not in listed.output  # the other side only


def test_the_cli_lists_a_link_whose_ward_came_of_age_as_lapsed(engine: Engine, settings: Settings,
                                                               secrets: Secrets, clock: FixedClock) -> None:
    """Not ended, yet no longer counting: the list must not call it in force."""
    with session_scope(engine) as session:
        parent = _citizen(session, secrets, clock, date(1960, 6, 1), email="parent@lyon.example")
        child = _citizen(session, secrets, clock, date.today() - timedelta(days=17 * 365),
                         email="child@lyon.example")
        Guardianships(session).establish(parent, child, basis="registry", actor=actions.OPERATOR,
                                         now=clock.now())
        child.birth_date = date.today() - timedelta(days=19 * 365)  # a corrected record: an adult all along
        session.add(child)
    env = {"BROKER_DATA_DIR": str(settings.data_dir), "BROKER_DATABASE_URL": settings.resolved_database_url(),
           "BROKER_POLICY_DIR": str(settings.policy_dir)}
    listed = CliRunner().invoke(cli, ["guardians", "list", "parent@lyon.example"], env=env)
    assert listed.exit_code == 0, listed.output
    assert listed.output.rstrip().endswith("lapsed") and "in force" not in listed.output, listed.output
