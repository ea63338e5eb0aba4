/**
 * One leader among the processes that share the database: a lease row
 * (repos/leases.ts) that every serving process tries to take or renew every
 * third of the lease time. The holder runs the scheduled jobs; a process
 * that fails to renew (another took the lease, the database is unreachable,
 * or a renewal did not answer before the lease ran out) stops them at once;
 * one that shuts down gives the lease back so another takes over at its next
 * attempt. When the leader dies, its lease runs out and the next attempt of
 * another process after that moment wins. Lease times are epoch ms from the
 * injected clock, so the boxes of a deployment need roughly synchronised
 * clocks (NTP); skew beyond a second or so shortens or lengthens a takeover.
 */
import { randomBytes } from 'node:crypto';
import cluster from 'node:cluster';
import os from 'node:os';
import { acquireLease, getLease, releaseLease, type LeaseRow } from '../db/repos/leases.js';
import type { ServiceDeps } from './deps.js';

/** The lease whose holder runs the scheduled jobs. */
export const JOBS_LEASE = 'jobs';

/** This process as a lease holder: a unique holder id, and what people need to find the process. */
export interface LeaseIdentity {
  holder: string;
  host: string;
  pid: number;
  /** The node:cluster worker id, or null outside a cluster. */
  worker: number | null;
  /** The address the process listens on (host:port), once it does. */
  listen: string | null;
}

/** What the holder runs; started on each election, stopped when the lease is lost or given back. */
export interface LeaderRole {
  stop(): Promise<void>;
}

/** Who leads, as the dashboard and GET /api/v1/health show it. */
export interface LeaderView {
  holder: string;
  host: string;
  pid: number;
  worker: number | null;
  listen: string | null;
  /** When this holder took the lease. */
  since: string;
  renewedAt: string;
  expiresAt: string;
  /** False when the lease ran out without a renewal: the leader stopped; another process takes over at its next attempt. */
  live: boolean;
  /** True when the process answering is the leader. */
  thisProcess: boolean;
}

type LeadershipDeps = Pick<ServiceDeps, 'db' | 'clock' | 'log'>;

export function processIdentity(): LeaseIdentity {
  const host = os.hostname();
  // A random part: two runtimes in one process (tests) and a reused pid after a restart are different holders.
  const holder = `${host}/${process.pid}/${randomBytes(6).toString('hex')}`;
  return { holder, host, pid: process.pid, worker: cluster.worker?.id ?? null, listen: null };
}

/** This process's place in the competition for one lease (the runtime has one, for JOBS_LEASE). */
export class Leadership {
  readonly identity: LeaseIdentity;
  readonly #deps: LeadershipDeps;
  readonly #name: string;
  readonly #leaseMs: number;
  #onElected: (() => LeaderRole) | null = null;
  #role: LeaderRole | null = null;
  /** The previous role while it winds down; a new election waits for it. */
  #roleStopping: Promise<void> | null = null;
  #expiresAt = 0;
  #timer: { cancel(): void } | null = null;
  #attempting: Promise<void> = Promise.resolve();
  #unreachable = false;
  #stopped: Promise<void> | null = null;

  constructor(deps: LeadershipDeps, options: { leaseMs: number; name?: string; identity?: LeaseIdentity }) {
    if (!Number.isInteger(options.leaseMs) || options.leaseMs < 3) {
      throw new TypeError(`Leadership: leaseMs must be a whole number >= 3, got ${String(options.leaseMs)}`);
    }
    this.#deps = deps;
    this.#leaseMs = options.leaseMs;
    this.#name = options.name ?? JOBS_LEASE;
    this.identity = options.identity ?? processIdentity();
  }

  /** How often the lease is renewed, and how often a process without it tries to take it. */
  get renewEveryMs(): number {
    return Math.floor(this.#leaseMs / 3);
  }

  /** True while this process holds the lease and its role runs. */
  isLeader(): boolean {
    return this.#role !== null;
  }

  /**
   * Starts competing: `onElected` starts the role each time this process takes the lease. Resolves after
   * the first attempt, so a lone process runs its role from here on.
   */
  async start(onElected: () => LeaderRole, listen: string | null = null): Promise<void> {
    if (this.#onElected || this.#stopped) throw new Error('Leadership: already started');
    this.#onElected = onElected;
    this.identity.listen = listen;
    await this.#attempt();
  }

  /** Resolves once the lease attempt under way, if any, has landed (for tests that move a fake clock). */
  idle(): Promise<void> {
    return this.#attempting;
  }

  /** Stops competing: stops the role, then gives the lease back so another process can take it at once. */
  stop(): Promise<void> {
    this.#stopped ??= this.#stop();
    return this.#stopped;
  }

  /** The current holder of the lease, from the database (any process can tell); null when none. */
  async leader(): Promise<LeaderView | null> {
    const row = await getLease(this.#deps.db, this.#name);
    if (!row) return null;
    const iso = (ms: number | string): string => new Date(Number(ms)).toISOString();
    return {
      holder: row.holder,
      host: row.host,
      pid: Number(row.pid),
      worker: row.worker === null ? null : Number(row.worker),
      listen: row.listen,
      since: iso(row.acquired_at),
      renewedAt: iso(row.renewed_at),
      expiresAt: iso(row.expires_at),
      live: Number(row.expires_at) >= this.#deps.clock.now(),
      thisProcess: row.holder === this.identity.holder && this.isLeader(),
    };
  }

  async #stop(): Promise<void> {
    this.#timer?.cancel();
    this.#timer = null;
    if (!this.#onElected) return;
    // An attempt in flight may still take the lease: let it land, then give the lease back.
    await this.#attempting;
    this.#depose('shutting down');
    await this.#roleStopping;
    try {
      await releaseLease(this.#deps.db, this.#name, this.identity.holder);
    } catch (err) {
      this.#deps.log.warn({ err, lease: this.#name }, 'could not give the lease back; it runs out by itself');
    }
  }

  #attempt(): Promise<void> {
    this.#attempting = this.#attemptOnce().catch((err: unknown) =>
      this.#deps.log.error({ err, lease: this.#name }, 'lease attempt failed'),
    );
    return this.#attempting;
  }

  async #attemptOnce(): Promise<void> {
    const { db, clock, log } = this.#deps;
    const now = clock.now();
    // A renewal that has not answered when the lease runs out must not leave the role running.
    const watchdog = this.#role
      ? clock.setTimeout(
          () => this.#depose('the lease ran out before its renewal answered'),
          Math.max(0, this.#expiresAt - now),
        )
      : null;
    let held: LeaseRow | undefined;
    let current: LeaseRow | undefined;
    let failure: unknown = null;
    try {
      held = await acquireLease(db, { name: this.#name, ...this.identity, now, expiresAt: now + this.#leaseMs });
      if (!held) current = await getLease(db, this.#name);
    } catch (err) {
      failure = err;
    } finally {
      watchdog?.cancel();
    }
    if (this.#stopped) return;
    if (failure === null && this.#unreachable) {
      this.#unreachable = false;
      log.info({ lease: this.#name }, 'the database answers lease attempts again');
    }
    if (held) {
      this.#expiresAt = Number(held.expires_at);
      if (!this.#role) this.#elect();
      this.#schedule(this.renewEveryMs);
      return;
    }
    if (failure !== null) {
      if (!this.#unreachable) log.warn({ err: failure, lease: this.#name }, 'cannot reach the database for the lease');
      this.#unreachable = true;
      this.#depose('the lease could not be renewed');
    } else {
      this.#depose(`another process took the lease (${current?.holder ?? 'unknown'})`);
    }
    // Try again right after the current lease runs out when that comes before the next regular attempt.
    const untilFree = current ? Number(current.expires_at) + 1 - clock.now() : Infinity;
    this.#schedule(Math.max(1, Math.min(this.renewEveryMs, untilFree)));
  }

  #schedule(ms: number): void {
    if (this.#stopped) return;
    this.#timer = this.#deps.clock.setTimeout(() => {
      this.#timer = null;
      void this.#attempt();
    }, ms);
  }

  #elect(): void {
    const onElected = this.#onElected;
    if (!onElected) return;
    this.#deps.log.info(
      { lease: this.#name, holder: this.identity.holder },
      'this process leads: it runs the scheduled jobs',
    );
    const previous = this.#roleStopping;
    if (!previous) {
      this.#role = onElected();
      return;
    }
    // The role lost a moment ago is still winding down: start the new one after it, never beside it.
    let started = null as LeaderRole | null;
    let cancelled = false;
    const starting = previous.then(() => {
      if (!cancelled) started = onElected();
    });
    this.#role = {
      async stop() {
        cancelled = true;
        await starting;
        await started?.stop();
      },
    };
  }

  #depose(why: string): void {
    const role = this.#role;
    if (!role) return;
    this.#role = null;
    this.#deps.log[why === 'shutting down' ? 'info' : 'warn'](
      { lease: this.#name, why },
      'this process no longer leads: its scheduled jobs stop',
    );
    const stopping: Promise<void> = role
      .stop()
      .catch((err: unknown) => this.#deps.log.error({ err }, 'stopping the leader role failed'))
      .finally(() => {
        if (this.#roleStopping === stopping) this.#roleStopping = null;
      });
    this.#roleStopping = stopping;
  }
}
