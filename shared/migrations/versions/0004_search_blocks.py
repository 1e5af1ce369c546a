"""Search blocks: a Bloom summary of each stretch of a sort order, so a search walks only where matches can be.

Each of the name and email sort orders is cut into blocks of consecutive rows (`search_blocks`: a
block starts at (`lo_key`, `lo_id`) and ends where the next one starts). A block's `bloom` has a bit set for
every pg_trgm trigram of every live contact in it, hashed to one of BLOOM_BITS bits. A contact that
contains a term has every trigram the term guarantees, so a block whose bloom lacks one of their bits
holds no match and a search need not walk it. The bloom may say yes wrongly, never no wrongly.

A trigger keeps that promise on every write (it only ever adds bits). Blocks grow as contacts are
added; `CALL split_search_blocks()` (the relay's housekeeping) cuts any block of more than twice
`target` rows into blocks of about `target`, with exact blooms; `CALL rebuild_search_blocks()` does
that for every block (after a bulk load). While blocks are cut, writes wait: each write takes ROW
EXCLUSIVE on `search_blocks` before it reads them (its UPDATE does, before its snapshot), the cutting
takes SHARE, so it sees every committed write and no write can land in a block being replaced.

Revision ID: 0004
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BLOOM_BITS = 16384
#: The sort orders with blocks, and their keys: the expressions of their `contacts_by_<field>` indexes.
#: (updated_at has none: every write moves a contact to its end, where all writes would meet on one row.)
FIELDS = ("first_name", "last_name", "email")


def _block_of(field: str) -> str:
    """The key of the block of `field`'s order that the trigger's NEW row falls in."""
    return (
        f"SELECT sort_field, lo_key, lo_id FROM search_blocks WHERE sort_field = '{field}'"
        f' AND (lo_key, lo_id) <= (NEW.{field} COLLATE "und-x-icu", NEW.id) ORDER BY lo_key DESC, lo_id DESC LIMIT 1'
    )


_FUNCTIONS = f"""
    -- The bit of a pg_trgm trigram (as show_trgm spells it) in a block's bloom.
    CREATE FUNCTION search_bit(trigram text) RETURNS integer LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
        AS $$ SELECT hashtext(trigram) & {BLOOM_BITS - 1} $$;

    -- The bits of the trigrams every text containing `term` has. A trigram at the term's own edges
    -- may be cut differently in a longer word, so only those that survive gluing letters to both
    -- ends (two different letters, in case the term already ends in one) are kept.
    CREATE FUNCTION search_term_bits(term text) RETURNS integer[] LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
        AS $$ SELECT ARRAY(SELECT DISTINCT search_bit(trigram) FROM unnest(show_trgm(lower(term))) AS trigram
                           WHERE trigram = ANY (show_trgm('q' || lower(term) || 'q'))
                             AND trigram = ANY (show_trgm('z' || lower(term) || 'z'))) $$;

    CREATE FUNCTION search_mask(bits integer[]) RETURNS bit({BLOOM_BITS}) LANGUAGE plpgsql IMMUTABLE STRICT
        PARALLEL SAFE AS $$
        DECLARE
            mask bit varying := B'0'::bit({BLOOM_BITS});
            bit_number integer;
        BEGIN
            FOREACH bit_number IN ARRAY bits LOOP
                mask := set_bit(mask, bit_number, 1);
            END LOOP;
            RETURN mask;
        END $$;

    -- The bits of all of a text's trigrams (pg_trgm's: lowered, per word, padded at word edges), as a mask.
    CREATE FUNCTION search_text_mask(haystack text) RETURNS bit({BLOOM_BITS}) LANGUAGE plpgsql IMMUTABLE STRICT
        PARALLEL SAFE AS $$
        DECLARE
            mask bit varying := B'0'::bit({BLOOM_BITS});
            trigram text;
        BEGIN
            FOREACH trigram IN ARRAY show_trgm(haystack) LOOP
                mask := set_bit(mask, search_bit(trigram), 1);
            END LOOP;
            RETURN mask;
        END $$;

    -- Every write of a live contact adds its bits to the block of each sort order it falls in: one
    -- UPDATE of three blocks by primary key, which writes nothing when they have every bit already.
    -- The UPDATE takes ROW EXCLUSIVE on search_blocks before it takes its snapshot, so it waits for a
    -- cut under way and then reads the blocks that cut left.
    CREATE FUNCTION contacts_search_blocks() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            mask bit({BLOOM_BITS});
        BEGIN
            IF TG_OP = 'UPDATE' AND NEW.search_text = OLD.search_text THEN
                RETURN NULL;
            END IF;
            mask := search_text_mask(NEW.search_text);
            UPDATE search_blocks SET bloom = bloom | mask
            WHERE ((sort_field, lo_key, lo_id) = ({_block_of("first_name")})
                OR (sort_field, lo_key, lo_id) = ({_block_of("last_name")})
                OR (sort_field, lo_key, lo_id) = ({_block_of("email")}))
              AND bloom & mask <> mask;
            RETURN NULL;
        END $$;

    -- Replace the block of `field` that starts at (lo_key, lo_id) and ends at (hi_key, hi_id), or at the
    -- end when hi_key is null, with blocks of `target` rows and exact blooms.
    CREATE PROCEDURE cut_search_block(field text, start_key text, start_id bigint, end_key text, end_id bigint,
                                      target integer) LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM set_config('work_mem', '256MB', true);  -- a block's distinct bits, hashed in memory
            DELETE FROM search_blocks
            WHERE sort_field = field AND (lo_key, lo_id) = (start_key COLLATE "und-x-icu", start_id);
            EXECUTE format($sql$
                WITH walk AS (
                    SELECT sort_key, id, search_text, row_number() OVER (ORDER BY sort_key, id) - 1 AS n
                    FROM (SELECT %1$I COLLATE "und-x-icu" AS sort_key, id, search_text FROM contacts
                          WHERE deleted_at IS NULL AND (%1$I COLLATE "und-x-icu", id) >= ($2, $3)
                            AND ($4 IS NULL OR (%1$I COLLATE "und-x-icu", id) < ($4, $5))) AS live
                ),
                bits AS (
                    SELECT n / $6 AS piece, search_bit(trigram) AS bit
                    FROM walk, unnest(show_trgm(search_text)) AS trigram GROUP BY 1, 2
                ),
                blooms AS (SELECT piece, search_mask(array_agg(bit)) AS bloom FROM bits GROUP BY piece),
                sizes AS (SELECT n / $6 AS piece, count(*) AS live_rows FROM walk GROUP BY 1),
                starts AS (
                    SELECT 0 AS piece, $2 COLLATE "und-x-icu" AS lo_key, $3 AS lo_id
                    UNION ALL SELECT n / $6, sort_key, id FROM walk WHERE n %% $6 = 0 AND n > 0
                )
                INSERT INTO search_blocks (sort_field, lo_key, lo_id, bloom, live_rows)
                SELECT $1, lo_key, lo_id, coalesce(bloom, B'0'::bit({BLOOM_BITS})), coalesce(live_rows, 0)
                FROM starts LEFT JOIN blooms USING (piece) LEFT JOIN sizes USING (piece)
                $sql$, field) USING field, start_key, start_id, end_key, end_id, target;
        END $$;

    -- Cut every block of more than twice `target` live rows, one block per transaction, and note the
    -- size of the others. Nothing is counted while the table has not grown by a tenth since the blocks'
    -- sizes were last noted (by the planner's estimate of its rows).
    CREATE PROCEDURE split_search_blocks(target integer DEFAULT 1000) LANGUAGE plpgsql AS $$
        DECLARE
            block record;
            live integer;
        BEGIN
            IF (SELECT reltuples BETWEEN 0 AND 1.1 * (SELECT min(noted) FROM (
                    SELECT sum(live_rows) AS noted FROM search_blocks GROUP BY sort_field) AS fields)
                FROM pg_class WHERE oid = 'contacts'::regclass) THEN
                RETURN;  -- (reltuples is -1 before the table is first analyzed)
            END IF;
            FOR block IN
                SELECT sort_field, lo_key, lo_id, live_rows,
                       lead(lo_key) OVER next AS hi_key, lead(lo_id) OVER next AS hi_id
                FROM search_blocks WINDOW next AS (PARTITION BY sort_field ORDER BY lo_key, lo_id)
            LOOP
                -- Counted in two parts, the keys short of the next block's key and then that key up to its id:
                -- a row comparison ends an index scan only at its first column, so `(key, id) < (hi_key,
                -- hi_id)` would go on through every row with hi_key.
                EXECUTE format($sql$
                    SELECT (SELECT count(*) FROM (
                               SELECT FROM contacts WHERE deleted_at IS NULL
                                 AND (%1$I COLLATE "und-x-icu", id) >= ($1, $2)
                                 AND ($3 IS NULL OR %1$I COLLATE "und-x-icu" < $3)
                               LIMIT 2 * $5 + 1) AS short_of_it)
                         + (SELECT count(*) FROM (
                               SELECT FROM contacts WHERE deleted_at IS NULL
                                 AND (%1$I COLLATE "und-x-icu", id) >= ($1, $2)
                                 AND %1$I COLLATE "und-x-icu" = $3 AND id < $4
                               LIMIT 2 * $5 + 1) AS its_key) $sql$, block.sort_field)
                    INTO live USING block.lo_key, block.lo_id, block.hi_key, block.hi_id, target;
                IF live > 2 * target THEN
                    LOCK TABLE search_blocks IN SHARE MODE;
                    CALL cut_search_block(block.sort_field, block.lo_key, block.lo_id, block.hi_key, block.hi_id,
                                          target);
                ELSIF live IS DISTINCT FROM block.live_rows THEN
                    UPDATE search_blocks SET live_rows = live
                    WHERE (sort_field, lo_key, lo_id) = (block.sort_field, block.lo_key, block.lo_id);
                END IF;
                COMMIT;
            END LOOP;
        END $$;

    -- Recompute every block from scratch, e.g. after a bulk load; writes wait until it is done.
    CREATE PROCEDURE rebuild_search_blocks(target integer DEFAULT 1000) LANGUAGE plpgsql AS $$
        DECLARE
            field text;
        BEGIN
            LOCK TABLE search_blocks IN SHARE MODE;
            FOREACH field IN ARRAY ARRAY{list(FIELDS)} LOOP
                DELETE FROM search_blocks WHERE sort_field = field;
                INSERT INTO search_blocks VALUES (field, '', 0, B'0'::bit({BLOOM_BITS}), NULL);
                CALL cut_search_block(field, '', 0, NULL, NULL, target);
            END LOOP;
            ANALYZE search_blocks;
        END $$;
"""


def upgrade() -> None:
    op.execute(
        f"""
        CREATE TABLE search_blocks (
            sort_field  text NOT NULL CHECK (sort_field IN {FIELDS}),
            lo_key      text COLLATE "und-x-icu" NOT NULL,  -- the block holds the rows from (lo_key, lo_id)
            lo_id       bigint NOT NULL,                    -- on, up to the next block's (lo_key, lo_id)
            bloom       bit({BLOOM_BITS}) NOT NULL,
            live_rows   integer,                            -- its live rows when it was cut; null: not yet cut
            PRIMARY KEY (sort_field, lo_key, lo_id)
        );
        ALTER TABLE search_blocks ALTER COLUMN bloom SET STORAGE PLAIN;  -- read bit by bit, never unpacked
        {_FUNCTIONS}
        -- Until the first split, one block per sort order that may hold anything: every search walks it.
        INSERT INTO search_blocks
            SELECT field, '', 0, ~B'0'::bit({BLOOM_BITS}), NULL FROM unnest(ARRAY{list(FIELDS)}) AS field;
        CREATE TRIGGER contacts_search_blocks AFTER INSERT OR UPDATE OF first_name, last_name, email, phone
            ON contacts FOR EACH ROW WHEN (NEW.deleted_at IS NULL) EXECUTE FUNCTION contacts_search_blocks();
        GRANT SELECT ON search_blocks TO contacts_reader;
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TRIGGER contacts_search_blocks ON contacts;
        DROP PROCEDURE rebuild_search_blocks, split_search_blocks, cut_search_block;
        DROP FUNCTION contacts_search_blocks, search_text_mask, search_mask, search_term_bits, search_bit;
        DROP TABLE search_blocks;
        """
    )
