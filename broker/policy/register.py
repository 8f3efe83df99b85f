"""The record of processing activities, GDPR Art 30(1), generated from the policy files.

Art 30(1) asks the controller to keep, for each processing activity: (a) the controller's and the DPO's
contact details, (b) the purposes, (c) the categories of data subjects and of personal data, (d) the
recipients, (e) transfers to third countries, (f) the time limits for erasure and (g) a general description
of the security measures of Art 32(1). https://eur-lex.europa.eu/eli/reg/2016/679/oj

It is generated rather than written by hand so that it can never drift from what the broker enforces: the
same files that decide who may query what are the ones the register describes.
"""

from __future__ import annotations

from typing import Literal

from broker.policy.schema import LEGAL_BASES, Dataset, DatasetUse, Policy, Purpose, Text

Lang = Literal["en", "fr"]

# French meanings of the legal bases, matching the English ones in schema.LEGAL_BASES.
_BASES_FR = {
    "eu-gdpr:A6-1-a": "consentement",
    "eu-gdpr:A6-1-b": "exécution d’un contrat",
    "eu-gdpr:A6-1-c": "obligation légale",
    "eu-gdpr:A6-1-d": "sauvegarde des intérêts vitaux",
    "eu-gdpr:A6-1-e": "mission d’intérêt public",
    "eu-gdpr:A6-1-f": "intérêts légitimes",
    "eu-gdpr:A9-2-a": "consentement explicite (catégories particulières)",
    "eu-gdpr:A9-2-g": "motif d’intérêt public important",
    "eu-gdpr:A9-2-i": "intérêt public dans le domaine de la santé publique",
    "eu-gdpr:A9-2-j": "recherche scientifique et statistiques",
}

_LABELS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Record of processing activities",
        "intro": "GDPR Article 30(1). Generated from the reviewed policy files; do not edit by hand.",
        "controller": "Controller", "name": "Name", "address": "Address", "contact": "Contact",
        "dpo": "Data protection officer", "authority": "Supervisory authority", "jurisdiction": "Jurisdiction",
        "security": "Security measures (Art 32), common to every activity",
        "activities": "Processing activities",
        "version": "version", "status": "Status", "department": "Department answerable",
        "purpose": "Purpose", "basis": "Legal basis", "subjects": "Categories of data subjects",
        "data": "Categories of personal data", "special": "Special categories (Art 9)",
        "recipients": "Recipients", "transfers": "Transfers to third countries",
        "retention": "Retention", "measures": "Security measures",
        "automated": "Automated decision-making (Art 22)", "open_data": "Open data",
        "none": "none", "yes": "yes", "no": "no", "colon": ":", "sep": "; ",
        "no_transfer": "none; data and results stay in the European Union",
        "subjects_consent": "residents who have given their consent in the portal, aged {age} or over",
        "subjects_explicit": "residents who have given their explicit consent in the portal, aged {age} or over",
        "subjects_other": "residents and users of the city's services whose records the providers send "
                          "(not based on consent; never served through consent)",
        "pseudonym": "pseudonymous identifier",
        "retention_text": "results {purpose} months; records in the vault {datasets}",
        "validity_text": "; consent valid {validity} months, then asked again",
        "months": "months",
        "measures_text": "pseudonymisation, encryption, differential privacy (ε ≤ {q} per query, {s} per "
                         "service and {t} in all per {period} and dataset)",
        "open_yes": "differentially private aggregates are published", "open_no": "not published",
        "no_automated": "no decision about a person is taken from these statistics",
        "automated_yes": "yes; see the purpose description for the logic involved",
    },
    "fr": {
        "title": "Registre des activités de traitement",
        "intro": "Article 30(1) du RGPD. Produit à partir des fichiers de politique relus ; ne pas modifier "
                 "à la main.",
        "controller": "Responsable du traitement", "name": "Nom", "address": "Adresse", "contact": "Contact",
        "dpo": "Délégué à la protection des données", "authority": "Autorité de contrôle",
        "jurisdiction": "Juridiction",
        "security": "Mesures de sécurité (art. 32), communes à toutes les activités",
        "activities": "Activités de traitement",
        "version": "version", "status": "Statut", "department": "Direction responsable",
        "purpose": "Finalité", "basis": "Base légale", "subjects": "Catégories de personnes concernées",
        "data": "Catégories de données personnelles", "special": "Catégories particulières (art. 9)",
        "recipients": "Destinataires", "transfers": "Transferts hors de l’Union européenne",
        "retention": "Durées de conservation", "measures": "Mesures de sécurité",
        "automated": "Décision automatisée (art. 22)", "open_data": "Données ouvertes",
        "none": "aucune", "yes": "oui", "no": "non", "colon": " :", "sep": " ; ",
        "no_transfer": "aucun ; les données et les résultats restent dans l’Union européenne",
        "subjects_consent": "habitants ayant donné leur consentement sur le portail, âgés de {age} ans ou plus",
        "subjects_explicit": "habitants ayant donné leur consentement explicite sur le portail, âgés de {age} "
                             "ans ou plus",
        "subjects_other": "habitants et usagers des services de la ville dont les fournisseurs transmettent les "
                          "relevés (sans consentement ; jamais servi au titre du consentement)",
        "pseudonym": "identifiant pseudonyme",
        "retention_text": "résultats {purpose} mois ; relevés dans le coffre-fort {datasets}",
        "validity_text": " ; consentement valable {validity} mois, puis redemandé",
        "months": "mois",
        "measures_text": "pseudonymisation, chiffrement, confidentialité différentielle (ε ≤ {q} par requête, "
                         "{s} par service et {t} au total par {period} et par jeu de données)",
        "open_yes": "des agrégats protégés par la confidentialité différentielle sont publiés",
        "open_no": "pas de publication",
        "no_automated": "aucune décision concernant une personne n’est prise à partir de ces statistiques",
        "automated_yes": "oui ; la logique est décrite avec la finalité",
    },
}
# Art 30(1)(g): the general description of the Art 32 measures, stated once for the whole broker.
_MEASURES: dict[str, list[str]] = {
    "en": [
        "**Pseudonymisation**: outside the identity store a citizen appears only as HMAC-SHA256(pepper, id); "
        "the audit log and the vault never hold a name or an e-mail address.",
        "**Encryption**: identifiers are encrypted under a key per citizen (AES-GCM), itself wrapped by the "
        "broker's master key; erasure destroys the citizen's key (crypto-shredding).",
        "**Differential privacy**: services never read records; they receive aggregates with calibrated "
        "noise, within per-query and per-period ε budgets and each citizen's own yearly cap "
        "(default ε {cap}). Noisy counts below {threshold} are suppressed.",
        "**Accountability**: every decision, allowed or denied, is written to an append-only log with "
        "signed checkpoints (RFC 9162); consent receipts are signed (JWS, ES256).",
        "**Access control**: services authenticate as OAuth 2 clients and may ask only for the purposes "
        "listed for them.",
    ],
    "fr": [
        "**Pseudonymisation** : hors de la base d’identité, un habitant n’apparaît que sous la forme "
        "HMAC-SHA256(poivre, id) ; le journal d’audit et le coffre-fort ne contiennent ni nom ni adresse "
        "électronique.",
        "**Chiffrement** : les identifiants sont chiffrés avec une clé propre à chaque habitant (AES-GCM), "
        "elle-même protégée par la clé maîtresse ; l’effacement détruit la clé de l’habitant.",
        "**Confidentialité différentielle** : les services ne lisent jamais les relevés ; ils reçoivent des "
        "agrégats bruités, dans la limite de budgets ε par requête et par période et du plafond annuel "
        "de chaque habitant (ε {cap} par défaut). Les effectifs bruités inférieurs à {threshold} sont "
        "masqués.",
        "**Traçabilité** : chaque décision, accordée ou refusée, est inscrite dans un journal en ajout seul "
        "avec des points de contrôle signés (RFC 9162) ; les reçus de consentement sont signés (JWS, ES256).",
        "**Contrôle d’accès** : les services s’authentifient comme clients OAuth 2 et ne peuvent demander "
        "que les finalités qui leur sont attribuées.",
    ],
}
_PERIODS = {"en": {"month": "month", "quarter": "quarter", "year": "year"},
            "fr": {"month": "mois", "quarter": "trimestre", "year": "an"}}
_STATUS = {"en": {"active": "active", "suspended": "suspended", "retired": "retired"},
           "fr": {"active": "actif", "suspended": "suspendu", "retired": "retiré"}}


def legal_basis_meaning(code: str, lang: Lang = "en") -> str:
    """The plain meaning of an eu-gdpr legal-basis code, e.g. ``public task``."""
    return _BASES_FR[code] if lang == "fr" else LEGAL_BASES[code]


def _text(text: Text, lang: Lang) -> str:
    return text.fr if lang == "fr" else text.en


def _number(value: float, lang: Lang) -> str:
    """``0.25`` in English, ``0,25`` in French."""
    text = f"{value:g}"
    return text.replace(".", ",") if lang == "fr" else text


def _item(labels: dict[str, str], key: str, value: str) -> str:
    """One ``- **Label:** value`` line; French puts a space before the colon."""
    return f"- **{labels[key]}{labels['colon']}** {value}"


def _data_categories(policy: Policy, use: DatasetUse, lang: Lang) -> str:
    labels = _LABELS[lang]
    dataset: Dataset | None = policy.dataset(use.dataset)
    if dataset is None:
        return f"`{use.dataset}`"
    parts = []
    for name in dict.fromkeys([*use.fields, *use.group_by]):  # fields first, then group-by keys, once each
        field = dataset.field(name)
        unit = f", {field.unit}" if field and field.unit else ""
        parts.append(f"{_text(field.description, lang)} (`{name}`{unit})" if field else f"`{name}`")
    return f"{_text(dataset.title, lang)} (`{dataset.id}`){labels['colon']} " + labels["sep"].join(parts)


def _subjects(policy: Policy, purpose: Purpose, labels: dict[str, str]) -> str:
    if not purpose.takes_consent:
        return labels["subjects_other"]
    key = "subjects_explicit" if purpose.special_category else "subjects_consent"
    return labels[key].format(age=policy.minimum_age(purpose))


def _retention(policy: Policy, purpose: Purpose, labels: dict[str, str]) -> str:
    datasets = ", ".join(
        f"`{d.id}` {d.retention_months} {labels['months']}"
        for d in (policy.dataset(u.dataset) for u in purpose.datasets) if d is not None
    )
    text = labels["retention_text"].format(purpose=purpose.retention_months, datasets=datasets or labels["none"])
    # Consent validity means nothing for a purpose that never asks for consent.
    if purpose.takes_consent:
        text += labels["validity_text"].format(validity=purpose.consent_validity_months)
    return text


def _activity(policy: Policy, number: int, purpose: Purpose, lang: Lang) -> list[str]:
    labels, sep, budget = _LABELS[lang], _LABELS[lang]["sep"], purpose.budget
    special = labels["no"]
    if purpose.special_category:
        kinds = ", ".join(f"`{kind}`" for kind in purpose.special_category_kinds)
        special = f"{labels['yes']}{labels['colon']} {kinds}"
    measures = labels["measures_text"].format(
        q=_number(budget.per_query_epsilon, lang), s=_number(budget.per_service_epsilon, lang),
        t=_number(budget.total_epsilon, lang), period=_PERIODS[lang][budget.period])
    automated = labels["automated_yes"] if purpose.automated_decision else labels["no"] + sep + labels["no_automated"]
    basis = f"`{purpose.legal_basis}`, {legal_basis_meaning(purpose.legal_basis, lang)}"
    data = sep.join([labels["pseudonym"], *(_data_categories(policy, use, lang) for use in purpose.datasets)])
    return [
        f"### {number}. {_text(purpose.title, lang)} (`{purpose.id}`, {labels['version']} {purpose.version})",
        "",
        _item(labels, "status", _STATUS[lang][purpose.status]),
        _item(labels, "department", purpose.controller),
        _item(labels, "purpose", f"{_text(purpose.description, lang)} (`{purpose.dpv_purpose}`)"),
        _item(labels, "basis", basis),
        _item(labels, "subjects", _subjects(policy, purpose, labels)),
        _item(labels, "data", data),
        _item(labels, "special", special),
        _item(labels, "recipients", sep.join(purpose.recipients)),
        _item(labels, "transfers", labels["no_transfer"]),
        _item(labels, "retention", _retention(policy, purpose, labels)),
        _item(labels, "measures", measures),
        _item(labels, "automated", automated),
        _item(labels, "open_data", labels["open_yes"] if purpose.publish_open_data else labels["open_no"]),
        "",
    ]


def processing_register(policy: Policy, lang: Lang = "en") -> str:
    """The Art 30(1) record of processing activities as Markdown, in English or French."""
    if lang not in _LABELS:
        raise ValueError(f"unknown language {lang!r}; expected 'en' or 'fr'")
    labels = _LABELS[lang]
    controller, rules = policy.broker.controller, policy.broker
    lines = [
        f"# {labels['title']}{labels['colon']} {controller.name}",
        "",
        labels["intro"],
        "",
        f"## {labels['controller']}",
        "",
        _item(labels, "name", controller.name),
        _item(labels, "address", controller.address),
        _item(labels, "contact", controller.contact_email),
        _item(labels, "dpo", controller.dpo_email),
        _item(labels, "authority", controller.supervisory_authority),
        _item(labels, "jurisdiction", rules.jurisdiction),
        "",
        f"## {labels['security']}",
        "",
        *(f"- {item.format(cap=_number(rules.citizen_privacy_cap, lang), threshold=rules.suppression_threshold)}"
          for item in _MEASURES[lang]),
        "",
        f"## {labels['activities']}",
        "",
    ]
    for number, purpose in enumerate(policy.purposes, start=1):
        lines.extend(_activity(policy, number, purpose, lang))
    return "\n".join(lines).rstrip() + "\n"
