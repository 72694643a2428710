"""What the full-text index reads (store/terms.py)."""

from mmrag.store.terms import lexical_text


def test_cjk_runs_become_bigrams_and_latin_stays():
    assert lexical_text("보안기술은 ICT").split() == ["보안", "안기", "기술", "술은", "ICT"]
    assert lexical_text("ＡＢＣ社").split() == ["ABC", "社"]  # NFKC: full-width to ASCII


def test_stemming_lower_cases_words_and_leaves_numbers_and_bigrams():
    got = lexical_text("Charts RECALIBRATED in 2024 보안기술", stem=True).split()
    assert got == ["chart", "recalibr", "in", "2024", "보안", "안기", "기술"]
    assert lexical_text("Charts", stem=False) == "Charts"  # the store stems it itself
