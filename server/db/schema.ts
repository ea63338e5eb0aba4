/**
 * Table types for kysely. Timestamps are integer milliseconds since the
 * epoch (portable: INTEGER in SQLite, BIGINT in PostgreSQL).
 */
import type { Insertable, Selectable, Updateable } from 'kysely';

export type BlobState = 'ok' | 'corrupt' | 'missing';

export interface BlobsTable {
  sha256: string;
  size: number;
  /** File name the package last arrived with, cleaned to a safe path segment; used in generated links. */
  name: string;
  created_at: number;
  state: BlobState;
  verified_at: number | null;
}

export interface Database {
  blobs: BlobsTable;
}

export type BlobRow = Selectable<BlobsTable>;
export type NewBlobRow = Insertable<BlobsTable>;
export type BlobUpdate = Updateable<BlobsTable>;
