-- A reversal happens once (PostgreSQL's schema has the same index): the books' lock already
-- serialises reversals, and this makes the rule the database's too.
CREATE UNIQUE INDEX entries_reverse_once ON entries (reverses);
