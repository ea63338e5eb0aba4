import { addedColumn, oneOf } from './columns.js';

// Frozen in time: never edit a released migration, add a new one.
// API token scopes: tokens made before scopes existed keep full rights (admin).
export const { up, down } = addedColumn(
  'api_tokens',
  'scope',
  'varchar(10)',
  oneOf('scope', ['admin', 'read', 'sync'], 'admin'),
);
