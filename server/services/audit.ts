/** The audit log: who changed what, written in the same transaction as the change. */
import type { Db } from '../db/open.js';
import { insertAuditRow } from '../db/repos/audit.js';
import type { AuditRow } from '../db/schema.js';

/** Who is acting: a signed-in admin, an API token, the local CLI, or the server itself. */
export interface Actor {
  kind: 'user' | 'token' | 'cli' | 'system';
  name: string;
}

export const cliActor: Actor = { kind: 'cli', name: process.env.USER ?? 'local' };
export const systemActor: Actor = { kind: 'system', name: 'goldmirror' };

export function actorLabel(actor: Actor): string {
  return `${actor.kind}:${actor.name}`;
}

export async function recordAudit(
  db: Db,
  entry: { actor: Actor; action: string; target: string; details?: Record<string, unknown>; at: number },
): Promise<void> {
  await insertAuditRow(db, {
    at: entry.at,
    actor: actorLabel(entry.actor),
    action: entry.action,
    target: entry.target,
    details: JSON.stringify(entry.details ?? {}),
  });
}

export interface AuditEntry {
  id: number;
  at: string;
  actor: string;
  action: string;
  target: string;
  details: unknown;
}

/** A stored row with its details parsed (text that is not JSON stays text). */
export function toAuditEntry(row: AuditRow): AuditEntry {
  let details: unknown;
  try {
    details = JSON.parse(row.details);
  } catch {
    details = row.details;
  }
  return {
    id: row.id,
    at: new Date(row.at).toISOString(),
    actor: row.actor,
    action: row.action,
    target: row.target,
    details,
  };
}
