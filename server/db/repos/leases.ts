/** The `leases` table: named leases that processes sharing the database compete for, each one statement. */
import type { Selectable } from 'kysely';
import type { Db } from '../open.js';
import type { LeasesTable } from '../schema.js';

export type LeaseRow = Selectable<LeasesTable>;

/** Who asks for a lease, and until when it would hold it. */
export interface LeaseClaim {
  name: string;
  holder: string;
  host: string;
  pid: number;
  worker: number | null;
  listen: string | null;
  now: number;
  expiresAt: number;
}

/**
 * Takes the lease when it is free (no row, or its expiry has passed) or renews it when `holder` holds it, as
 * one INSERT … ON CONFLICT DO UPDATE … WHERE, so two processes can never both win. Returns the row when
 * `holder` holds the lease now, undefined when another process does.
 */
export async function acquireLease(db: Db, claim: LeaseClaim): Promise<LeaseRow | undefined> {
  const { name, holder, host, pid, worker, listen, now, expiresAt } = claim;
  return db
    .insertInto('leases')
    .values({
      name,
      holder,
      host,
      pid,
      worker,
      listen,
      acquired_at: now,
      renewed_at: now,
      expires_at: expiresAt,
    })
    .onConflict((oc) =>
      oc
        .column('name')
        .doUpdateSet((eb) => ({
          holder: eb.ref('excluded.holder'),
          host: eb.ref('excluded.host'),
          pid: eb.ref('excluded.pid'),
          worker: eb.ref('excluded.worker'),
          listen: eb.ref('excluded.listen'),
          // A renewal keeps the start of an unbroken hold; a lease taken after its expiry starts anew.
          acquired_at: eb
            .case()
            .when(eb.and([eb('leases.holder', '=', holder), eb('leases.expires_at', '>=', now)]))
            .then(eb.ref('leases.acquired_at'))
            .else(eb.ref('excluded.acquired_at'))
            .end(),
          renewed_at: eb.ref('excluded.renewed_at'),
          expires_at: eb.ref('excluded.expires_at'),
        }))
        .where((eb) => eb.or([eb('leases.expires_at', '<', now), eb('leases.holder', '=', holder)])),
    )
    .returningAll()
    .executeTakeFirst();
}

export function getLease(db: Db, name: string): Promise<LeaseRow | undefined> {
  return db.selectFrom('leases').selectAll().where('name', '=', name).executeTakeFirst();
}

/** Gives the lease up if `holder` still holds it; true when it did. */
export async function releaseLease(db: Db, name: string, holder: string): Promise<boolean> {
  const result = await db.deleteFrom('leases').where('name', '=', name).where('holder', '=', holder).executeTakeFirst();
  return result.numDeletedRows > 0n;
}
