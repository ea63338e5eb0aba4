/** What the replica probes need, taken from a runtime (the scheduled job and the heartbeat route share it). */
import type { CoreDeps } from '../app-deps.js';
import { createOutboundFetch } from '../net/outbound.js';
import type { ProbeDeps } from './replica-checks.js';

export function probeDeps(
  runtime: Pick<CoreDeps, 'db' | 'clock' | 'store' | 'log' | 'config' | 'ingestDeps'>,
): ProbeDeps {
  const { db, clock, store, log, config } = runtime;
  return {
    db,
    clock,
    store,
    log,
    outbound: runtime.ingestDeps.outbound ?? createOutboundFetch({ allow: config.fetchAllow, listenHost: config.host }),
  };
}
