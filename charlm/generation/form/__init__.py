"""Lyric form: rhyme groups from pinyin, line layouts (lengths, stanzas, rhyme schemes, tonal
patterns), named classical forms and templates, the constraint that holds generation to a
layout, and `scan`, which reads the form of any lyric.

Public names: `rhyme.RhymeBook`, `layout.Layout`, `layout.parse_form`, `layout.from_template`,
`layout.FORMS`, `constraint.FormConstraint`, `scan.scan`.
"""
