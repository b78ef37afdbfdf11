"""Interop script: third-party Python dqlite clients against a running cluster.

Usage:
    python compare.py wait    --servers A,B,C [--timeout S]
    python compare.py common  --servers A,B,C --database NAME
    python compare.py beyond-c --servers A,B,C --database NAME

``common`` runs the same workload through dqlite-dbapi (PEP 249, sync), SQLAlchemy Core and
the SQLAlchemy ORM (sqlalchemy-dqlite) and prints a deterministic JSON transcript on stdout:
the same cluster contents and the same client-visible results (values, Python types, error
classes and messages) give byte-identical output. python_interop.rs runs it against a C dqlite
1.11 cluster and a dqlite-rs cluster and compares the two transcripts.

``beyond-c`` runs the cases where C dqlite 1.11 fails (more than 255 parameters, rows wider
than a 4096-byte batch, several writers at once, INSERT ... RETURNING in autocommit, which
aborts a C leader). It checks its own results and exits non-zero with a message on the first
wrong one; it also prints a JSON transcript.

``wait`` returns once a write through the cluster succeeds (bounded by --timeout).

Nothing here depends on which server implementation answers.
"""

import argparse
import datetime as dt
import json
import os
import sys
import threading
import time

import dqlitedbapi
import sqlalchemy as sa
from sqlalchemy import orm

I64_MIN = -(2**63)
I64_MAX = 2**63 - 1
LARGE_ROWS = 6000


def norm(v):
    """A JSON-able, type-tagged rendering of a value read back through a client."""
    if v is None:
        return None
    if isinstance(v, bool):
        return {"bool": v}
    if isinstance(v, int):
        return {"int": str(v)}
    if isinstance(v, float):
        return {"float": repr(v)}
    if isinstance(v, str):
        return {"text": v}
    if isinstance(v, (bytes, bytearray, memoryview)):
        return {"blob": bytes(v).hex()}
    if isinstance(v, dt.datetime):
        return {"datetime": v.isoformat()}
    if isinstance(v, dt.date):
        return {"date": v.isoformat()}
    if isinstance(v, (tuple, list)) or type(v).__name__ == "Row":
        return [norm(x) for x in v]
    return {type(v).__name__: repr(v)}


def err(e):
    """Class and message of an error: both are client-visible and must match."""
    return {"error": type(e).__module__ + "." + type(e).__qualname__, "message": str(e)}


class Transcript:
    """An ordered list of (step, result) entries."""

    def __init__(self):
        self.steps = []

    def add(self, name, value):
        self.steps.append({"step": name, "result": value})
        if os.environ.get("INTEROP_TRACE"):
            print(json.dumps(self.steps[-1], ensure_ascii=False)[:400], file=sys.stderr)

    def run(self, name, fn):
        """Records fn()'s result, or its error."""
        try:
            self.add(name, fn())
        except Exception as e:  # noqa: BLE001 (errors are results here)
            self.add(name, err(e))


def leader_address(servers):
    """First address: the clients find the leader from any node."""
    return servers[0]


# --- dqlite-dbapi ---------------------------------------------------------------------------


def dbapi_part(t, address, database):
    conn = dqlitedbapi.connect(address, database=database, timeout=30.0)
    cur = conn.cursor()

    def q(sql, params=()):
        cur.execute(sql, params)
        rows = cur.fetchall()
        desc = [d[0] for d in cur.description] if cur.description else None
        return {"columns": desc, "rows": norm(rows)}

    def x(sql, params=()):
        cur.execute(sql, params)
        return {"rowcount": cur.rowcount, "lastrowid": cur.lastrowid}

    t.run("dbapi.create", lambda: x(
        "CREATE TABLE kinds (id INTEGER PRIMARY KEY, i INTEGER, f REAL, t TEXT, b BLOB, "
        "n TEXT, flag BOOLEAN, at DATETIME)"))
    t.run("dbapi.create_unique", lambda: x(
        "CREATE TABLE uniq (k TEXT UNIQUE NOT NULL, v INTEGER)"))
    values = [
        (0, 0.0, "", b"", None, False, dt.datetime(2000, 1, 1, 0, 0, 0)),
        (I64_MIN, -1.5, "plain ascii", b"\x00\x01\x02", None, True,
         dt.datetime(2024, 2, 29, 23, 59, 59, 123456)),
        (I64_MAX, 3.141592653589793, "unicode: héllo wörld ☃ 日本語 🦀", bytes(range(256)), None,
         True, dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=dt.timezone.utc)),
        (-1, 1e308, "x" * 1000, b"\xff" * 3000, None, False,
         dt.datetime(2038, 1, 19, 3, 14, 8, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30)))),
        (42, -0.0, "quote ' and \" and \\ and \n newline", b"blob", None, None, None),
    ]
    for n, v in enumerate(values):
        t.run(f"dbapi.insert.{n}", lambda v=v: x(
            "INSERT INTO kinds (i, f, t, b, n, flag, at) VALUES (?, ?, ?, ?, ?, ?, ?)", v))
    t.run("dbapi.select_kinds", lambda: q("SELECT * FROM kinds ORDER BY id"))
    t.run("dbapi.typeof", lambda: q(
        "SELECT typeof(i), typeof(f), typeof(t), typeof(b), typeof(n), typeof(flag), typeof(at) "
        "FROM kinds ORDER BY id"))
    t.run("dbapi.select_param_types", lambda: q(
        "SELECT ?, ?, ?, ?, ?, ?", (I64_MIN, 2.5, "ü", b"\x00", None, True)))
    t.run("dbapi.expressions", lambda: q(
        "SELECT 1 + 1, 7 / 2, 7.0 / 2, 'a' || 'b', NULL IS NULL, length(x'0102'), hex('é')"))

    # A large SELECT (several ROWS batches in both implementations).
    cur.execute("CREATE TABLE big (id INTEGER PRIMARY KEY, label TEXT, val REAL)")
    cur.execute("BEGIN")
    cur.executemany(
        "INSERT INTO big (id, label, val) VALUES (?, ?, ?)",
        [(i, f"row-{i:05d}", i / 7) for i in range(LARGE_ROWS)])
    cur.execute("COMMIT")
    cur.execute("SELECT id, label, val FROM big ORDER BY id")
    rows = cur.fetchall()
    t.add("dbapi.large_select", {
        "count": len(rows),
        "first": norm(rows[0]),
        "last": norm(rows[-1]),
        "digest": sum(r[0] for r in rows),
        "labels_ok": all(r[1] == f"row-{r[0]:05d}" for r in rows),
        "vals_ok": all(r[2] == r[0] / 7 for r in rows),
    })
    cur.execute("SELECT id, label FROM big WHERE id % 1000 = 0 ORDER BY id")
    t.add("dbapi.fetchmany", {"first": norm(cur.fetchmany(2)), "rest": norm(cur.fetchall())})

    # Transactions.
    cur.execute("CREATE TABLE tx (k INTEGER PRIMARY KEY, v TEXT)")
    t.run("dbapi.tx_commit", lambda: [x("BEGIN"), x("INSERT INTO tx VALUES (1, 'kept')"),
                                      x("INSERT INTO tx VALUES (2, 'kept too')"), x("COMMIT")])
    t.run("dbapi.tx_rollback", lambda: [x("BEGIN"), x("INSERT INTO tx VALUES (3, 'gone')"),
                                        x("UPDATE tx SET v = 'changed' WHERE k = 1"),
                                        x("ROLLBACK")])
    t.run("dbapi.tx_after", lambda: q("SELECT * FROM tx ORDER BY k"))
    t.run("dbapi.savepoint", lambda: [x("BEGIN"), x("SAVEPOINT sp"),
                                      x("INSERT INTO tx VALUES (4, 'sp')"),
                                      x("ROLLBACK TO sp"), x("INSERT INTO tx VALUES (5, 'kept')"),
                                      x("RELEASE sp"), x("COMMIT"),
                                      q("SELECT k FROM tx ORDER BY k")])
    t.run("dbapi.conn_commit", lambda: (x("INSERT INTO tx VALUES (6, 'autocommit')"),
                                        conn.commit(), q("SELECT count(*) FROM tx"))[2])

    # Errors.
    t.run("dbapi.syntax_error", lambda: x("SELEC 1"))
    t.run("dbapi.no_such_table", lambda: q("SELECT * FROM missing_table"))
    t.run("dbapi.no_such_column", lambda: q("SELECT nope FROM tx"))
    t.run("dbapi.unique_1", lambda: x("INSERT INTO uniq VALUES ('a', 1)"))
    t.run("dbapi.unique_2", lambda: x("INSERT INTO uniq VALUES ('a', 2)"))
    t.run("dbapi.not_null", lambda: x("INSERT INTO uniq VALUES (NULL, 3)"))
    t.run("dbapi.pk_violation", lambda: x("INSERT INTO tx VALUES (1, 'dup')"))
    t.run("dbapi.error_in_tx", lambda: [x("BEGIN"), x("INSERT INTO uniq VALUES ('b', 1)")])
    t.run("dbapi.error_in_tx.dup", lambda: x("INSERT INTO uniq VALUES ('b', 2)"))
    t.run("dbapi.error_in_tx.rollback", lambda: x("ROLLBACK"))
    t.run("dbapi.after_errors", lambda: q("SELECT * FROM uniq ORDER BY k"))
    t.run("dbapi.wrong_param_count", lambda: x("INSERT INTO uniq VALUES (?, ?)", ("only one",)))
    t.run("dbapi.drop", lambda: x("DROP TABLE uniq"))
    t.run("dbapi.dropped", lambda: q("SELECT * FROM uniq"))
    conn.close()


# --- SQLAlchemy Core and ORM ----------------------------------------------------------------


class Base(orm.DeclarativeBase):
    pass


class Author(Base):
    __tablename__ = "authors"
    id: orm.Mapped[int] = orm.mapped_column(primary_key=True)
    name: orm.Mapped[str] = orm.mapped_column(sa.String(100), unique=True)
    born: orm.Mapped[dt.date | None]
    books: orm.Mapped[list["Book"]] = orm.relationship(back_populates="author",
                                                        order_by="Book.id")


class Book(Base):
    __tablename__ = "books"
    id: orm.Mapped[int] = orm.mapped_column(primary_key=True)
    title: orm.Mapped[str]
    price: orm.Mapped[float | None]
    cover: orm.Mapped[bytes | None] = orm.mapped_column(sa.LargeBinary)
    in_print: orm.Mapped[bool] = orm.mapped_column(default=True)
    added: orm.Mapped[dt.datetime | None]
    author_id: orm.Mapped[int] = orm.mapped_column(sa.ForeignKey("authors.id"))
    author: orm.Mapped[Author] = orm.relationship(back_populates="books")


def sqlalchemy_part(t, address, database):
    engine = sa.create_engine(f"dqlite://{address}/{database}", pool_size=2)
    meta = sa.MetaData()
    core = sa.Table(
        "core_items", meta,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("big", sa.BigInteger),
        sa.Column("ratio", sa.Float),
        sa.Column("label", sa.Unicode(200)),
        sa.Column("data", sa.LargeBinary),
        sa.Column("ok", sa.Boolean),
        sa.Column("when", sa.DateTime),
        sa.Column("day", sa.Date),
    )
    meta.create_all(engine)
    Base.metadata.create_all(engine)
    t.add("sa.tables", sorted(sa.inspect(engine).get_table_names()))
    t.add("sa.columns", [[c["name"], str(c["type"]), c["nullable"]]
                         for c in sa.inspect(engine).get_columns("core_items")])

    rows = [
        {"big": I64_MAX, "ratio": 0.1, "label": "Ωμέγα", "data": b"\x00\xff", "ok": True,
         "when": dt.datetime(2020, 5, 17, 12, 30, 45, 500), "day": dt.date(2020, 5, 17)},
        {"big": I64_MIN, "ratio": -2.25, "label": "", "data": b"", "ok": False,
         "when": dt.datetime(1999, 12, 31, 23, 59, 59), "day": dt.date(1, 1, 1)},
        {"big": None, "ratio": None, "label": None, "data": None, "ok": None, "when": None,
         "day": None},
    ]

    def core_insert():
        with engine.begin() as c:
            r = c.execute(core.insert(), rows)
            return r.rowcount

    t.run("sa.core.insert_many", core_insert)

    def core_select():
        with engine.connect() as c:
            return norm(c.execute(sa.select(core).order_by(core.c.id)).all())

    t.run("sa.core.select", core_select)

    def core_rollback():
        with engine.connect() as c:
            tr = c.begin()
            c.execute(core.update().values(label="changed"))
            c.execute(core.delete().where(core.c.id == 1))
            tr.rollback()
            return norm(c.execute(sa.select(core.c.id, core.c.label).order_by(core.c.id)).all())

    t.run("sa.core.rollback", core_rollback)

    def core_update():
        with engine.begin() as c:
            n = c.execute(core.update().where(core.c.id == 2).values(label="updated")).rowcount
        with engine.connect() as c:
            return [n, norm(c.execute(sa.select(core.c.label).where(core.c.id == 2)).scalar())]

    t.run("sa.core.update", core_update)

    def core_agg():
        with engine.connect() as c:
            return norm(c.execute(sa.select(sa.func.count(), sa.func.max(core.c.big),
                                            sa.func.min(core.c.ratio))).one())

    t.run("sa.core.aggregate", core_agg)

    def core_text_params():
        with engine.connect() as c:
            return norm(c.execute(sa.text("SELECT :a + :b, :s || '!'"),
                                  {"a": 40, "b": 2, "s": "hé"}).one())

    t.run("sa.core.text_params", core_text_params)

    def core_error(sql):
        def run():
            with engine.connect() as c:
                c.execute(sa.text(sql))
        return run

    t.run("sa.core.syntax_error", core_error("SELEC 1"))
    t.run("sa.core.no_such_table", core_error("SELECT * FROM nowhere"))

    # ORM: a unit of work with relationships, commit, rollback and a constraint violation.
    def orm_commit():
        with orm.Session(engine) as s:
            a = Author(name="Ada", born=dt.date(1815, 12, 10))
            a.books = [Book(title="Notes", price=9.5, cover=b"\x89PNG", in_print=False,
                            added=dt.datetime(2021, 1, 2, 3, 4, 5)),
                       Book(title="Letters ✉", price=None)]
            s.add_all([a, Author(name="Grace")])
            s.commit()
            return [a.id, [b.id for b in a.books]]

    t.run("sa.orm.commit", orm_commit)

    def orm_rollback():
        with orm.Session(engine) as s:
            s.add(Author(name="Temporary"))
            s.flush()
            s.get(Author, 1).name = "Renamed"
            s.flush()
            s.rollback()
            return sorted(s.scalars(sa.select(Author.name)).all())

    t.run("sa.orm.rollback", orm_rollback)

    def orm_unique_violation():
        with orm.Session(engine) as s:
            s.add(Author(name="Ada"))
            s.commit()

    t.run("sa.orm.unique_violation", orm_unique_violation)

    def orm_query():
        with orm.Session(engine) as s:
            out = []
            for a in s.scalars(sa.select(Author).order_by(Author.id)):
                out.append([a.id, a.name, norm(a.born),
                            [[b.title, norm(b.price), norm(b.cover), b.in_print, norm(b.added)]
                             for b in a.books]])
            joined = s.execute(sa.select(Author.name, sa.func.count(Book.id))
                               .join(Book, isouter=True).group_by(Author.id)
                               .order_by(Author.id)).all()
            return [out, norm(joined)]

    t.run("sa.orm.query", orm_query)

    def orm_delete():
        with orm.Session(engine) as s:
            for b in s.scalars(sa.select(Book).where(Book.price.is_(None))):
                s.delete(b)
            s.commit()
            return s.scalar(sa.select(sa.func.count()).select_from(Book))

    t.run("sa.orm.delete", orm_delete)
    engine.dispose()


def common(servers, database):
    t = Transcript()
    address = leader_address(servers)
    dbapi_part(t, address, database)
    sqlalchemy_part(t, address, database + "_sa")
    return t.steps


# --- cases where C dqlite 1.11 fails ---------------------------------------------------------


class CheckFailed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise CheckFailed(what)


def beyond_c(servers, database):
    t = Transcript()
    address = leader_address(servers)
    conn = dqlitedbapi.connect(address, database=database, timeout=30.0)
    cur = conn.cursor()

    # More than 255 parameters in one statement (C 1.11 encodes the count in one byte).
    n = 300
    cols = ", ".join(f"c{i} INTEGER" for i in range(n))
    cur.execute(f"CREATE TABLE wide ({cols})")
    cur.execute(f"INSERT INTO wide VALUES ({', '.join('?' * n)})", list(range(n)))
    check(cur.rowcount == 1, f"300-parameter insert: rowcount {cur.rowcount}")
    cur.execute("SELECT * FROM wide")
    row = cur.fetchone()
    check(list(row) == list(range(n)), "300-parameter insert: row read back differs")
    cur.execute(f"SELECT {', '.join('?' * 1000)}", [f"p{i}" for i in range(1000)])
    row = cur.fetchone()
    check(list(row) == [f"p{i}" for i in range(1000)], "1000-parameter select differs")
    t.add("params_300_and_1000", "ok")

    # Rows wider than one 4096-byte batch: one value alone, and the sum of many columns.
    cur.execute("CREATE TABLE fat (id INTEGER PRIMARY KEY, t TEXT, b BLOB)")
    big_text = "é" * 50_000
    big_blob = bytes(range(256)) * 400
    cur.execute("INSERT INTO fat (t, b) VALUES (?, ?)", (big_text, big_blob))
    cur.execute("INSERT INTO fat (t, b) VALUES (?, ?)", ("small", b"s"))
    cur.execute("INSERT INTO fat (t, b) VALUES (?, ?)", (big_text[:3000], big_blob[:5000]))
    cur.execute("SELECT t, b FROM fat ORDER BY id")
    rows = cur.fetchall()
    check(len(rows) == 3, f"fat rows: {len(rows)}")
    check(rows[0][0] == big_text and bytes(rows[0][1]) == big_blob, "fat row 1 differs")
    check(rows[1][0] == "small" and bytes(rows[1][1]) == b"s", "fat row 2 differs")
    check(rows[2][0] == big_text[:3000] and bytes(rows[2][1]) == big_blob[:5000],
          "fat row 3 differs")
    many = ", ".join(f"printf('%0200d', {i})" for i in range(250))
    cur.execute(f"SELECT {many}")
    row = cur.fetchone()
    check(list(row) == [f"{i:0200d}" for i in range(250)], "250 x 200-byte columns differ")
    t.add("wide_rows", "ok")

    # INSERT ... RETURNING in autocommit (aborts a C 1.11 leader).
    cur.execute("CREATE TABLE ret (id INTEGER PRIMARY KEY, v TEXT)")
    cur.execute("INSERT INTO ret (v) VALUES (?), (?) RETURNING id, v", ("a", "b"))
    got = cur.fetchall()
    check([tuple(r) for r in got] == [(1, "a"), (2, "b")], f"RETURNING rows: {got!r}")
    cur.execute("UPDATE ret SET v = v || '!' RETURNING v")
    got = sorted(r[0] for r in cur.fetchall())
    check(got == ["a!", "b!"], f"UPDATE RETURNING rows: {got!r}")
    cur.execute("DELETE FROM ret WHERE id = 1 RETURNING id")
    got = cur.fetchall()
    check([tuple(r) for r in got] == [(1,)], f"DELETE RETURNING rows: {got!r}")
    cur.execute("SELECT id, v FROM ret")
    got = [tuple(r) for r in cur.fetchall()]
    check(got == [(2, "b!")], f"after RETURNING statements: {got!r}")
    t.add("returning_autocommit", "ok")

    # Several connections writing at once: no "database is locked".
    cur.execute("CREATE TABLE counter (writer INTEGER, seq INTEGER, PRIMARY KEY (writer, seq))")
    writers, per_writer = 6, 40
    errors = []
    barrier = threading.Barrier(writers)

    def writer(w):
        try:
            c = dqlitedbapi.connect(address, database=database, timeout=30.0,
                                    check_same_thread=False)
            k = c.cursor()
            barrier.wait(timeout=30)
            for s in range(per_writer):
                if s % 2 == 0:
                    k.execute("INSERT INTO counter VALUES (?, ?)", (w, s))
                else:
                    k.execute("BEGIN")
                    k.execute("INSERT INTO counter VALUES (?, ?)", (w, s))
                    k.execute("UPDATE counter SET seq = seq WHERE writer = ?", (w,))
                    k.execute("COMMIT")
            c.close()
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(f"writer {w}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    check(not any(th.is_alive() for th in threads), "a writer thread is still running")
    check(not errors, "concurrent writers failed: " + "; ".join(errors[:5]))
    cur.execute("SELECT count(*) FROM counter")
    total = cur.fetchone()[0]
    check(total == writers * per_writer, f"concurrent writers: {total} rows")
    t.add("concurrent_writers", {"writers": writers, "rows": total})
    conn.close()
    return t.steps


def wait(servers, timeout):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            conn = dqlitedbapi.connect(servers[0], database="interop_wait", timeout=5.0)
            cur = conn.cursor()
            cur.execute("CREATE TABLE IF NOT EXISTS probe (x INTEGER)")
            cur.execute("INSERT INTO probe VALUES (1)")
            conn.close()
            return
        except Exception as e:  # noqa: BLE001 (retried until the deadline)
            last = e
            time.sleep(0.2)
    raise SystemExit(f"cluster {','.join(servers)} not writable after {timeout}s: {last!r}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["wait", "common", "beyond-c"])
    p.add_argument("--servers", required=True)
    p.add_argument("--database", default="interop")
    p.add_argument("--timeout", type=float, default=60.0)
    a = p.parse_args()
    servers = [s for s in a.servers.split(",") if s]
    if a.mode == "wait":
        wait(servers, a.timeout)
        return
    try:
        steps = common(servers, a.database) if a.mode == "common" else beyond_c(servers,
                                                                              a.database)
    except CheckFailed as e:
        print(f"beyond-c check failed: {e}", file=sys.stderr)
        sys.exit(1)
    json.dump(steps, sys.stdout, indent=1, ensure_ascii=False, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
