from mmrag.catalog import Catalog, DocRecord


def rec(source, doc_id, items=("i1",)):
    return DocRecord(doc_id, source, source.rsplit("/", 1)[-1], "text/plain", 3, list(items), 0.0)


def test_catalog_round_trip_and_lookups(tmp_path):
    cat = Catalog(tmp_path / "c.sqlite")
    cat.commit([rec("/d/a.txt", "h1", ["h1:0", "h1:1"]), rec("/d/sub/b.txt", "h2"),
                rec("/e/a.txt", "h1")])
    assert cat.by_source("/d/a.txt").item_ids == ["h1:0", "h1:1"]
    assert {r.source for r in cat.by_doc_id("h1")} == {"/d/a.txt", "/e/a.txt"}
    assert {r.source for r in cat.under("/d")} == {"/d/a.txt", "/d/sub/b.txt"}
    assert cat.under("/d/a") == []  # a prefix of a name is not a folder
    cat.close()
    reopened = Catalog(tmp_path / "c.sqlite")
    assert reopened.doc_ids() == {"h1", "h2"}
    reopened.remove_sources(["/d/a.txt"])
    assert reopened.doc_ids() == {"h1", "h2"}  # still referenced by /e/a.txt
    reopened.remove_doc_ids(["h1"])
    assert reopened.doc_ids() == {"h2"}


def test_catalog_transaction_rolls_back_on_error(tmp_path):
    cat = Catalog(tmp_path / "c.sqlite")
    bad = rec("/x", "h9")
    bad.item_ids = {1, 2}  # not JSON-serialisable: the whole commit must roll back
    try:
        cat.commit([rec("/ok", "h8"), bad])
    except TypeError:
        pass
    assert cat.doc_ids() == set()


def test_attachments_are_found_as_descendants(tmp_path):
    cat = Catalog(tmp_path / "c.sqlite")
    mail, pdf, inner, leaf = (rec("/m.eml", "p"), rec("/m.eml#a.pdf", "c1"),
                              rec("/m.eml#f.eml", "c2"), rec("/m.eml#f.eml#n.txt", "g1"))
    pdf.parent = inner.parent = "p"
    leaf.parent = "c2"
    cat.commit([mail, pdf, inner, leaf, rec("/other.txt", "o")])
    assert {r.source for r in cat.children(["p"])} == {"/m.eml#a.pdf", "/m.eml#f.eml"}
    assert {r.doc_id for r in cat.descendants(["p"])} == {"c1", "c2", "g1"}
    assert cat.by_source("/m.eml#a.pdf").parent == "p" and cat.by_source("/m.eml").parent == ""


def test_catalog_without_parent_column_is_upgraded(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript("CREATE TABLE docs (source TEXT PRIMARY KEY, doc_id TEXT NOT NULL, "
                     "name TEXT NOT NULL, mime TEXT NOT NULL, size INTEGER NOT NULL, "
                     "item_ids TEXT NOT NULL, added REAL NOT NULL);"
                     "INSERT INTO docs VALUES ('/a.txt', 'h1', 'a.txt', 'text/plain', 3, "
                     "'[\"h1:0\"]', 1.0);")
    db.commit()
    db.close()
    cat = Catalog(path)
    assert cat.by_source("/a.txt").parent == "" and cat.children(["h1"]) == []
    cat.commit([rec("/b.txt", "h2")])
    assert cat.doc_ids() == {"h1", "h2"}
