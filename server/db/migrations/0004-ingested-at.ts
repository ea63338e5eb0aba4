import { addedColumn } from './columns.js';

// Frozen in time: never edit a released migration, add a new one.
// When a blob was last ingested (a re-upload of the same content keeps
// created_at, which Last-Modified shows): GC's grace period counts from here.
export const { up, down } = addedColumn('blobs', 'ingested_at', 'bigint');
