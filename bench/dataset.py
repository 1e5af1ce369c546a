"""The benchmark data set: `python -m bench.dataset DATABASE_URL [COUNT]` fills `contacts` with COUNT contacts.

Names come from lists with common, rare, accented and non-Latin entries, so searches range from a handful
of matches to thousands. Rows are generated inside PostgreSQL (one INSERT … SELECT); the indexes of
`contacts` are dropped first and rebuilt after, which is several times faster than maintaining them
row by row; so are the search blocks (the trigger that keeps them row by row is off meanwhile).
Deterministic for a given seed.
"""

import sys
import time

import psycopg

FIRST_NAMES = (  # noqa: SIM905  (a paragraph of names reads better than a list)
    "Ada Alan Grace Edsger Barbara Donald Ken Dennis Margaret Linus Guido Bjarne Frances John Mary Katherine "
    "Annie Hedy Radia Shafi Tim Vint Leslie Niklaus Tony Robin Judea Yoshua Geoffrey Yann Fei-Fei Andrew Sophie "
    "Karen Jean Adele Carol Lynn Hal Butler Whitfield Martin Ivan Sally Kristen Ole-Johan Peter Ward Brian "
    "Rob Bill Steve Paul Larry Sergey Marissa Susan Sheryl Ginni Lisa Safra Ursula Satya Sundar Jensen Zoë "
    "José Chloé Renée Søren Björn Jürgen Łukasz Ægir Çağla Şebnem İlkay Dorothée Ifeoma Nnamdi Ngozi Aroha "
    "Māui Kiri Hiroshi Yukihiro Satoshi Mei Wei Jian Ananya Priya Rahul Vikram Olga Dmitri Anastasia Katarzyna"
).split()

LAST_NAMES = (  # noqa: SIM905
    "Lovelace Turing Hopper Dijkstra Liskov Knuth Thompson Ritchie Hamilton Torvalds Rossum Stroustrup Allen "
    "Backus Johnson Easley Jennings Lamarr Perlman Goldwasser Berners-Lee Cerf Lamport Wirth Hoare Milner Pearl "
    "Bengio Hinton LeCun Li Ng Wilson Spärck-Jones Sammet Goldberg Kleinrock Conway Abelson Diffie Hellman "
    "Kernighan Pike Joy Gates Jobs Page Brin Mayer Wojcicki Sandberg Rometty Su Catz Burns Nadella Pichai "
    "Huang Smith Jones Williams Brown Taylor Davies Evans Thomas Roberts Walker Wright Robinson Thompson White "
    "Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz Hoffmann Ångström Øster Nguyễn Trần "
    "Lê Phạm García Fernández González Rodríguez López Martínez Sánchez Pérez Gómez Martin Bernard Dubois "
    "Durand Lefèvre Moreau Laurent O'Brien O'Connor D'Angelo McAllister MacDonald Kowalski Nowak Wiśniewski "
    "Wójcik Kovačević Horváth Nagy Novák Svoboda Dvořák Yılmaz Kaya Demir Şahin Çelik Popescu Ionescu Ivanov "
    "Smirnov Kuznetsov Petrov Иванов Смирнов Παπαδόπουλος 王 李 张 刘 陈 佐藤 鈴木 高橋 田中 김 이 박 Okafor "
    "Adeyemi Mensah Nkosi Otieno Haile Tesfaye Abebe Ngata Parata Tawhiri Singh Kumar Sharma Patel Gupta Rao"
).split()

_GENERATE = """
    INSERT INTO contacts (first_name, last_name, email, phone, version, created_at, updated_at)
    SELECT first_name, last_name,
           lower(translate(first_name || '.' || last_name, ' ''', '')) || '.' || i || '@example.'
               || (ARRAY['com', 'org', 'net', 'io'])[1 + i %% 4],
           '+' || (1 + i %% 89) || ' ' || lpad((i::bigint * 7919 %% 1000)::text, 3, '0') || ' '
               || lpad((i::bigint * 104729 %% 10000000)::text, 7, '0'),
           1, at, at
    FROM (
        SELECT i,
               (%(first)s::text[])[1 + floor(random() * cardinality(%(first)s::text[]))::int] AS first_name,
               (%(last)s::text[])[1 + floor(random() * cardinality(%(last)s::text[]))::int] AS last_name,
               now() - random() * interval '365 days' AS at
        FROM generate_series(1, %(count)s) AS i
    ) AS generated
"""


def generate_contacts(database_url: str, count: int, seed: float = 0.42) -> None:
    """Add `count` contacts to the (empty or not) `contacts` table, rebuilding its indexes after."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '512MB'")
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'contacts' AND indexname <> 'contacts_pkey'"
        ).fetchall()
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        conn.execute("ALTER TABLE contacts DISABLE TRIGGER contacts_search_blocks")
        try:
            conn.execute("SELECT setseed(%s)", (seed,))
            conn.execute(_GENERATE, {"first": list(FIRST_NAMES), "last": list(LAST_NAMES), "count": count})
        finally:
            conn.execute("ALTER TABLE contacts ENABLE TRIGGER contacts_search_blocks")
            for _, definition in indexes:
                conn.execute(definition)
        conn.execute("VACUUM ANALYZE contacts")
        conn.execute("CALL rebuild_search_blocks()")


def main(argv: list[str]) -> None:
    url, count = argv[0], int(argv[1]) if len(argv) > 1 else 1_000_000
    started = time.monotonic()
    generate_contacts(url, count)
    print(f"{count} contacts in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
