/**
 * The critical section for changing a blob's files together with its row.
 *
 * Every decision that ends in a file operation on a digest (an ingest that
 * renames its verified temp file into place, a check that quarantines a
 * corrupt copy, GC or a bundle rollback that unlinks one) re-reads what it
 * depends on and performs the file operation inside withBlobLock(). Two such
 * sections never overlap:
 * - across processes on one database file: BEGIN IMMEDIATE (server/db/open.ts)
 *   holds SQLite's write lock until commit; the others wait (busy timeout);
 * - within a process: kysely's single SQLite connection is a mutex held for
 *   the whole transaction, so no other query of this process runs meanwhile.
 * So the file system and the rows change together as one step. Keep the
 * sections short (a rename, an unlink, an fsync of one directory): every
 * database query waits for them. A server database would take a lock on the
 * digest here (an advisory or row lock) instead of relying on one writer.
 */
import type { Transaction } from 'kysely';
import type { Db } from './open.js';
import type { Database } from './schema.js';

export function withBlobLock<T>(db: Db, fn: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
  return db.transaction().execute(fn);
}
