/**
 * Recognising constraint violations is dialect-specific, so it lives here,
 * next to the database code: SQLite's result codes and PostgreSQL's SQLSTATEs.
 */
export type ConstraintKind = 'unique' | 'foreign_key' | 'check';

export function constraintViolation(err: unknown): { kind: ConstraintKind; detail: string } | null {
  if (typeof err !== 'object' || err === null) return null;
  const { code, message } = err as { code?: unknown; message?: unknown };
  const detail =
    typeof code === 'string' && /^23/.test(code) ? postgresDetail(err) : typeof message === 'string' ? message : '';
  switch (code) {
    case 'SQLITE_CONSTRAINT_UNIQUE':
    case 'SQLITE_CONSTRAINT_PRIMARYKEY':
    case '23505':
      return { kind: 'unique', detail };
    case 'SQLITE_CONSTRAINT_FOREIGNKEY':
    case '23503':
      return { kind: 'foreign_key', detail };
    // SQLite reports an ON DELETE RESTRICT violation (e.g. deleting a blob row an
    // image still uses) as SQLITE_CONSTRAINT_TRIGGER, not _FOREIGNKEY.
    case 'SQLITE_CONSTRAINT_TRIGGER':
      return /FOREIGN KEY constraint failed/i.test(detail) ? { kind: 'foreign_key', detail } : null;
    case 'SQLITE_CONSTRAINT_CHECK':
    case '23514':
      return { kind: 'check', detail };
    default:
      return null;
  }
}

/**
 * PostgreSQL's violation in SQLite's words, "<table>.<columns> (constraint <name>)", so that callers match one shape:
 * the table and column(s) come from the error's fields, never the offending values (a license key, say).
 */
function postgresDetail(err: object): string {
  const { table, constraint, detail, column } = err as Record<string, unknown>;
  const columns = typeof detail === 'string' ? /^Key \((.*)\)=\(/s.exec(detail)?.[1] : undefined;
  const where = [table, columns ?? column].filter((v) => typeof v === 'string' && v !== '').join('.');
  return `${where} (constraint ${typeof constraint === 'string' ? constraint : 'unknown'})`;
}
