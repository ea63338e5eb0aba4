/**
 * Prometheus metrics (prom-client), one registry per server so tests can run
 * several in one process. Gauges that describe shared state (disk, corrupt
 * blobs) are read at scrape time, so every node reports the same truth (and
 * the workers of one `serve --workers` cluster report it once, not summed).
 */
import cluster from 'node:cluster';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { clusterScrape } from './cluster/metrics.js';

export interface Metrics {
  registry: Registry;
  /** What /metrics answers: this registry, or in a `serve --workers` worker the sum over all workers. */
  scrape(): Promise<string>;
  downloadsStarted: Counter<'image' | 'arch'>;
  downloadsCompleted: Counter<'image' | 'arch'>;
  downloadsAborted: Counter<'image' | 'arch'>;
  downloadsRedirected: Counter<'image' | 'arch'>;
  siteDownloads: Counter<'site' | 'served_by'>;
  downloadBytes: Counter<'image' | 'arch'>;
  activeDownloads: Gauge;
  downloadSlotsUsed: Gauge;
  downloadSlotsMax: Gauge;
  downloadsRefused: Counter<'scope'>;
  downloadsCut: Counter;
  ingests: Counter<'result'>;
  ingestBytes: Counter;
  verifyRuns: Counter<'result'>;
  verifyBytes: Counter;
  updateSyncs: Counter<'result'>;
  httpDuration: Histogram<'method' | 'route' | 'status'>;
}

export interface MetricsSources {
  corruptBlobs(): Promise<number>;
  /** The local data directory's filesystem (on fs it holds the blobs too), and the catalog's blob bytes. */
  disk(): Promise<{ freeBytes: number; usedBytes: number; blobBytes: number }>;
  /** S3 only: the blobs in the bucket; its gauges then stand in for the disk's used bytes. */
  bucket?: (() => Promise<{ objects: number; bytes: number }>) | undefined;
  /** Parallels Desktop versions by state, and how many carry an alert (bytes that changed upstream). */
  updates?: (() => Promise<{ byState: Record<string, number>; alerts: number }>) | undefined;
}

export function createMetrics(sources: MetricsSources): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'goldmirror_process_' });
  const labels = ['image', 'arch'] as const;
  const disk = async (
    pick: (d: Awaited<ReturnType<MetricsSources['disk']>>) => number,
    gauge: Gauge,
  ): Promise<void> => {
    gauge.set(pick(await sources.disk()));
  };
  return {
    registry,
    scrape: cluster.isWorker ? clusterScrape(registry) : () => registry.metrics(),
    downloadsStarted: new Counter({
      name: 'goldmirror_downloads_started_total',
      help: 'Download responses started (GET with a body).',
      labelNames: labels,
      registers: [registry],
    }),
    downloadsCompleted: new Counter({
      name: 'goldmirror_downloads_completed_total',
      help: 'Download responses sent completely.',
      labelNames: labels,
      registers: [registry],
    }),
    downloadsAborted: new Counter({
      name: 'goldmirror_downloads_aborted_total',
      help: 'Download responses cut short (client gone, timeout).',
      labelNames: labels,
      registers: [registry],
    }),
    downloadsRedirected: new Counter({
      name: 'goldmirror_downloads_redirected_total',
      help: 'Download GETs answered 302 to a presigned URL of the object storage (MIRROR_S3_DOWNLOADS=redirect).',
      labelNames: labels,
      registers: [registry],
    }),
    siteDownloads: new Counter({
      name: 'goldmirror_site_downloads_total',
      help: 'Download GETs by the client\'s site ("" outside every site) and where they were served: "local" (this mirror) or the replica sent to.',
      labelNames: ['site', 'served_by'] as const,
      registers: [registry],
    }),
    downloadBytes: new Counter({
      name: 'goldmirror_download_bytes_total',
      help: 'Body bytes sent on download links.',
      labelNames: labels,
      registers: [registry],
    }),
    activeDownloads: new Gauge({
      name: 'goldmirror_active_downloads',
      help: 'Download responses in progress.',
      registers: [registry],
    }),
    downloadSlotsUsed: new Gauge({
      name: 'goldmirror_download_slots_used',
      help: 'Downloads of more than 1 MiB in progress: what MIRROR_MAX_DOWNLOADS caps.',
      registers: [registry],
    }),
    downloadSlotsMax: new Gauge({
      name: 'goldmirror_download_slots_max',
      help: 'MIRROR_MAX_DOWNLOADS (0 = no cap).',
      registers: [registry],
    }),
    downloadsRefused: new Counter({
      name: 'goldmirror_downloads_refused_total',
      help: 'Downloads refused with 503 TOO_MANY_DOWNLOADS, by the cap that was full (total, client).',
      labelNames: ['scope'],
      registers: [registry],
    }),
    downloadsCut: new Counter({
      name: 'goldmirror_downloads_cut_total',
      help: 'Downloads cut off while streaming because their package failed an integrity check.',
      registers: [registry],
    }),
    ingests: new Counter({
      name: 'goldmirror_ingests_total',
      help: 'Ingests by result (stored, duplicate, failed).',
      labelNames: ['result'],
      registers: [registry],
    }),
    ingestBytes: new Counter({
      name: 'goldmirror_ingest_bytes_total',
      help: 'Bytes committed by ingests.',
      registers: [registry],
    }),
    verifyRuns: new Counter({
      name: 'goldmirror_verify_runs_total',
      help: 'Integrity checks by result (ok, corrupt, missing, cancelled, error).',
      labelNames: ['result'],
      registers: [registry],
    }),
    verifyBytes: new Counter({
      name: 'goldmirror_verify_bytes_total',
      help: 'Bytes re-hashed by integrity checks.',
      registers: [registry],
    }),
    updateSyncs: new Counter({
      name: 'goldmirror_pd_update_syncs_total',
      help: 'Runs of the Parallels Desktop update sync: ok, or error (a feed or a file failed).',
      labelNames: ['result'],
      registers: [registry],
    }),
    httpDuration: new Histogram({
      name: 'goldmirror_http_request_duration_seconds',
      help: 'Time to answer API, page, metrics and health requests (download links are counted by the download metrics).',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers: [registry],
    }),
    ...registerScrapeGauges(registry, sources, disk),
  };
}

function registerScrapeGauges(
  registry: Registry,
  sources: MetricsSources,
  disk: (pick: (d: Awaited<ReturnType<MetricsSources['disk']>>) => number, gauge: Gauge) => Promise<void>,
): Record<string, never> {
  new Gauge({
    name: 'goldmirror_corrupt_blobs',
    help: 'Blobs withheld from download because they failed verification or went missing.',
    aggregator: 'first',
    registers: [registry],
    async collect() {
      this.set(await sources.corruptBlobs());
    },
  });
  new Gauge({
    name: 'goldmirror_disk_free_bytes',
    help: 'Free bytes on the filesystem of the data directory (blobs on fs; temp files and uploads either way).',
    aggregator: 'first',
    registers: [registry],
    async collect() {
      await disk((d) => d.freeBytes, this);
    },
  });
  const { bucket, updates } = sources;
  if (updates) registerUpdateGauges(registry, updates);
  if (bucket) registerBucketGauges(registry, bucket);
  else
    new Gauge({
      name: 'goldmirror_disk_used_bytes',
      help: 'Used bytes on the filesystem holding the blobs.',
      aggregator: 'first',
      registers: [registry],
      async collect() {
        await disk((d) => d.usedBytes, this);
      },
    });
  new Gauge({
    name: 'goldmirror_blob_bytes',
    help: 'Bytes of all stored blobs.',
    aggregator: 'first',
    registers: [registry],
    async collect() {
      await disk((d) => d.blobBytes, this);
    },
  });
  return {};
}

/** The bucket's blobs, counted by a listing the store caches; a bucket that does not answer leaves them out of the scrape. */
function registerBucketGauges(registry: Registry, bucket: NonNullable<MetricsSources['bucket']>): void {
  const gauge = (name: string, help: string, pick: (usage: { objects: number; bytes: number }) => number): void => {
    new Gauge({
      name,
      help,
      aggregator: 'first',
      registers: [registry],
      async collect() {
        try {
          this.set(pick(await bucket()));
        } catch {
          this.reset();
        }
      },
    });
  };
  gauge('goldmirror_bucket_objects', 'Blob objects in the bucket (MIRROR_STORAGE=s3).', (u) => u.objects);
  gauge('goldmirror_bucket_bytes', 'Bytes of the blob objects in the bucket (MIRROR_STORAGE=s3).', (u) => u.bytes);
}

/** Parallels Desktop versions (read from the database at scrape time, so every node says the same). */
function registerUpdateGauges(registry: Registry, updates: NonNullable<MetricsSources['updates']>): void {
  new Gauge({
    name: 'goldmirror_pd_update_versions',
    help: 'Parallels Desktop versions by state: available (stored, not published), published, waiting, failed, collected.',
    labelNames: ['state'],
    aggregator: 'first',
    registers: [registry],
    async collect() {
      const { byState } = await updates();
      this.reset();
      for (const [state, count] of Object.entries(byState)) this.set({ state }, count);
    },
  });
  new Gauge({
    name: 'goldmirror_pd_update_alerts',
    help: 'Parallels Desktop versions whose upstream bytes changed after they were stored (see the updates page).',
    aggregator: 'first',
    registers: [registry],
    async collect() {
      this.set((await updates()).alerts);
    },
  });
}
