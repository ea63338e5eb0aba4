/**
 * The scheduled jobs of a deployment: due integrity checks, garbage
 * collection, expired uploads, download-log retention, the sync from an
 * upstream mirror and the Parallels Desktop update feeds. Each is off when its interval is 0. They run only in the
 * process that holds the `jobs` lease (services/leadership.ts, wired in
 * serve.ts); what is due is read from the database on every tick, so a new
 * leader carries on where the last one stopped, and a check it cancelled is
 * still due.
 */
import type { Sha256 } from '../../storage/digest.js';
import { isError } from '../errors.js';
import { syncFrom } from '../bundles/sync.js';
import type { Runtime } from '../runtime.js';
import { systemActor } from '../services/audit.js';
import { pruneDownloadLog } from '../services/download-log.js';
import { collectGarbage } from '../services/gc.js';
import { syncUpdates } from '../services/pd-updates/sync.js';
import type { Clock } from '../services/deps.js';
import { probeDeps } from './probe-deps.js';
import { checkReplicas } from './replica-checks.js';
import { createHeartbeats } from './replica-heartbeat.js';
import { every } from './scheduler.js';
import { queueDueChecks } from './verify-schedule.js';

/** How often the verify scheduler looks for due blobs. */
const VERIFY_TICK_MS = 60_000;
/** How often unfinished uploads past their expiry are removed. */
const UPLOAD_CLEANUP_MS = 6 * 60 * 60 * 1000;
/** How often download log rows past MIRROR_DOWNLOAD_LOG_RETENTION are removed. */
const DOWNLOAD_LOG_PRUNE_MS = 60 * 60 * 1000;

/**
 * Starts the jobs on `clock`, with one sweep of expired uploads at once; the result stops them all, aborting
 * a running one and the integrity checks the scheduler queued (on-demand checks of other packages run on).
 */
export function startNodeJobs(
  runtime: Runtime,
  clock: Clock,
  dropExpiredUploads: () => Promise<void>,
): { stop(): Promise<void> } {
  const { config, db, store, log, checker } = runtime;
  const scheduledChecks = new Set<Sha256>();
  const warnUploads = (err: unknown): void => log.warn({ err }, 'could not clean expired uploads');
  const firstSweep = dropExpiredUploads().catch(warnUploads);
  const heartbeats = createHeartbeats(runtime, clock);
  const jobs = [
    config.verifyIntervalMs > 0
      ? every(
          clock,
          Math.min(VERIFY_TICK_MS, config.verifyIntervalMs),
          async () => {
            for (const sha of scheduledChecks) if (!checker.isBusyWith(sha)) scheduledChecks.delete(sha);
            for (const sha of await queueDueChecks({ db, clock }, checker, config.verifyIntervalMs))
              scheduledChecks.add(sha);
          },
          (err) => log.error({ err }, 'verify scheduler failed'),
        )
      : null,
    config.gcIntervalMs > 0
      ? every(
          clock,
          config.gcIntervalMs,
          async () => {
            const report = await collectGarbage({ db, store, clock }, systemActor, {
              dryRun: false,
              graceMs: config.gcGraceMs,
              keepUpdates: config.pdUpdatesKeep,
            });
            if (report.removed.length > 0)
              log.info({ removed: report.removed.length, freedBytes: report.freedBytes }, 'scheduled gc');
          },
          (err) => log.error({ err }, 'scheduled gc failed'),
        )
      : null,
    every(clock, UPLOAD_CLEANUP_MS, dropExpiredUploads, warnUploads),
    config.downloadLogRetentionMs > 0
      ? every(
          clock,
          DOWNLOAD_LOG_PRUNE_MS,
          async () => {
            const removed = await pruneDownloadLog({ db, clock }, config.downloadLogRetentionMs);
            if (removed > 0) log.info({ removed }, 'pruned download log rows past their retention');
          },
          (err) => log.warn({ err }, 'could not prune the download log'),
        )
      : null,
    config.syncFrom && config.syncIntervalMs > 0
      ? every(
          clock,
          config.syncIntervalMs,
          async (signal) => {
            const report = await syncFrom(runtime.ingestDeps, {
              from: config.syncFrom,
              token: config.syncToken,
              actor: systemActor,
              signal,
            });
            log.info(
              {
                from: report.from,
                fetched: report.fetched.length,
                images: report.import.images,
                groups: report.import.groups,
              },
              'sync finished',
            );
            // A replica tells its primary at once what it now holds.
            await heartbeats.afterSync(clock.now(), signal);
          },
          (err) => log.error({ err, from: config.syncFrom }, 'scheduled sync failed'),
          { atStart: true },
        )
      : null,
    config.pdUpdatesUpstream.length > 0 && config.pdUpdatesIntervalMs > 0
      ? every(
          clock,
          config.pdUpdatesIntervalMs,
          async (signal) => {
            const report = await syncUpdates(runtime.ingestDeps, {
              feeds: config.pdUpdatesUpstream,
              autoPublish: config.pdUpdatesAutoPublish,
              actor: systemActor,
              signal,
              log,
            });
            log.info(
              { fetched: report.fetched, failed: report.failed.length, alerts: report.alerts.length },
              'Parallels Desktop update sync finished',
            );
          },
          (err) =>
            isError(err, 'UPDATE_SYNC_RUNNING')
              ? log.info({ reason: err.message }, 'scheduled Parallels Desktop update sync skipped')
              : log.error({ err }, 'Parallels Desktop update sync failed'),
          { atStart: true },
        )
      : null,
    // A primary probes the replicas that report to it (none: one cheap query per interval).
    config.syncFrom === ''
      ? every(
          clock,
          config.replicaCheckIntervalMs,
          (signal) => checkReplicas(probeDeps(runtime), signal),
          (err) => log.error({ err }, 'replica checks failed'),
        )
      : null,
  ];
  return {
    async stop() {
      for (const sha of scheduledChecks) if (checker.isBusyWith(sha)) checker.cancel(sha);
      await Promise.all([firstSweep, ...jobs.map((j) => (j ? j.stop() : Promise.resolve()))]);
    },
  };
}
