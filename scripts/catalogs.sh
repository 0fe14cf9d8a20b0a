#!/bin/sh
# Refresh the translation catalogs after a change to the content YAML (README, "Languages"):
# extract the English texts into the template, merge it into each language's .po (a changed
# text becomes a new, untranslated message; its old translation is kept as fuzzy for the
# translator), and compile the .mo files the bot reads. Run from the repository root.
set -e
PY=${PYTHON:-python}
"$PY" -m babel.messages.frontend extract -F babel.cfg -o dialogs/locales/nightlegs.pot \
    --project nightlegs --version 3 --sort-by-file --width 100 --omit-header . >/dev/null
"$PY" -m babel.messages.frontend update -i dialogs/locales/nightlegs.pot -d dialogs/locales \
    -D nightlegs --width 100 --ignore-obsolete >/dev/null
"$PY" -m babel.messages.frontend compile -d dialogs/locales -D nightlegs --statistics
