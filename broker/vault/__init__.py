"""The vault: one SQL table per declared dataset, holding records about citizens under their pseudonym."""
