import pytest

from copilotz_orm.rag.chunking import chunk_words
from copilotz_orm.rag.reading import read_text
from copilotz_orm.errors import DocumentError


def test_offsets_reproduce_chunks_and_overlap():
    text = "  alpha beta\tgamma\n\ndelta  epsilon zeta eta theta iota kappa  "
    spans = chunk_words(text, size=4, overlap=1)
    for span in spans:
        assert text[span.start:span.end] == span.text
        assert span.token_count == len(span.text.split())
    words = text.split()
    assert spans[0].text.split() == words[:4]
    assert spans[1].text.split()[0] == words[3]  # one word of overlap
    assert spans[-1].text.split()[-1] == "kappa"


def test_every_word_is_covered():
    text = " ".join(f"w{i}" for i in range(1000))
    spans = chunk_words(text, size=160, overlap=32)
    covered = set()
    for span in spans:
        covered.update(span.text.split())
    assert covered == set(text.split())


@pytest.mark.parametrize("size, overlap", [(0, 0), (10, 10), (10, -1), (5000, 0)])
def test_bad_parameters(size, overlap):
    with pytest.raises(ValueError):
        chunk_words("a b c", size, overlap)


def test_pep_header_gives_title():
    doc = read_text("PEP: 8\nTitle: Style Guide\nAuthor: x\n\nBody text")
    assert doc.title == "PEP 8: Style Guide"
    assert doc.header["Author"] == "x"


def test_nul_is_removed_and_empty_refused():
    assert read_text("a\x00b").text == "ab"
    with pytest.raises(DocumentError):
        read_text(" \n\x00 ")


def test_html_is_reduced_to_visible_text_with_its_title():
    doc = read_text("<html><head><title>The  Page</title><script>var x = 1;</script></head>"
                    "<body><h1>Head</h1><p>Some &amp; text</p><style>p {}</style></body></html>",
                    mime_type="text/html")
    assert doc.title == "The Page"
    assert doc.text == "Head\n\nSome & text"
