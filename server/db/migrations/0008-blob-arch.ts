import { addedColumn, oneOf } from './columns.js';

// Frozen in time: never edit a released migration, add a new one.
// The architecture a package was uploaded or imported for, so the image form
// can offer it in the right slot. Existing packages were never asked: unknown.
export const { up, down } = addedColumn(
  'blobs',
  'arch',
  'varchar(16)',
  oneOf('arch', ['arm64', 'x86_64', 'unknown'], 'unknown'),
);
