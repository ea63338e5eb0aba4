/**
 * The one description of goldmirror's settings: names, types, defaults and
 * the MIRROR_* environment variable for each. Loading happens in load.ts.
 */
import os from 'node:os';
import { z } from 'zod';
import { parseCidr, splitList } from './cidr.js';

const byteCount = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const durationMs = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
/** Addresses and CIDR blocks ("10.0.0.5, fd00::/8"), each checked by the parser that matches them later. */
const cidrList = z
  .union([z.string(), z.array(z.string())])
  .default('')
  .transform((v, ctx) => {
    const cidrs: string[] = [];
    for (const entry of splitList(v)) {
      const cidr = parseCidr(entry);
      if (typeof cidr === 'string') ctx.issues.push({ code: 'custom', message: cidr, input: v });
      else cidrs.push(cidr.text);
    }
    return Object.freeze(cidrs);
  });

/** An absolute http(s) base URL without its trailing slashes, or '' for none. */
const optionalBaseUrl = z
  .string()
  .default('')
  .refine((v) => v === '' || isHttpUrl(v), { message: 'must be an absolute http:// or https:// URL' })
  .transform((v) => v.replace(/\/+$/, ''));

/** More workers than this is a typo, not a deployment (each is a whole Node process). */
export const MAX_WORKERS = 256;

/** Processes of `serve`: a whole number, or "auto" for one per core the process may use. */
const workerCount = z
  .union([z.number(), z.string()])
  .default(1)
  .transform((v, ctx) => {
    const count = v === 'auto' ? os.availableParallelism() : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
    if (typeof count !== 'number' || !Number.isInteger(count) || count < 1 || count > MAX_WORKERS) {
      ctx.issues.push({
        code: 'custom',
        message: `must be "auto" or a whole number from 1 to ${MAX_WORKERS}`,
        input: v,
      });
      return 1;
    }
    return count;
  });

export const configSchema = z
  .object({
    host: z.string().min(1).default('0.0.0.0'),
    port: z.number().int().min(0).max(65535).default(8080),
    dataDir: z.string().min(1).default('./data'),
    /**
     * A PostgreSQL server shared by every goldmirror process and node (postgres://user:pass@host:5432/db, with
     * ?sslmode= when needed). Empty: embedded SQLite at <dataDir>/goldmirror.db.
     */
    databaseUrl: z
      .string()
      .default('')
      .refine((v) => v === '' || isPostgresUrl(v), {
        message: 'must be a postgres:// or postgresql:// URL (or empty for SQLite in the data directory)',
      }),
    /** Connections each process keeps to PostgreSQL at most. */
    databasePoolSize: z.number().int().min(1).max(200).default(10),
    /**
     * Base URL written into download links (scheme, host, optional port and
     * path prefix). Wins over the address stored on the Settings page; empty: that one.
     */
    publicUrl: optionalBaseUrl,
    /** PEM certificate and key: serve HTTPS directly. Both or neither. */
    tlsCert: z.string().default(''),
    tlsKey: z.string().default(''),
    /** With TLS: a plain-HTTP port that still serves /d/ links (and /healthz) for old clients; 0 = none. */
    httpPort: z.number().int().min(0).max(65535).default(0),
    /** Cap on the total download rate in bytes per second; 0 = unlimited. */
    maxBytesPerSec: byteCount.default(0),
    /** Downloads of more than 1 MiB streaming at once; more are refused with 503 and Retry-After. 0 = no cap. */
    maxDownloads: z.number().int().nonnegative().max(1_000_000).default(1024),
    /** The same per client address. 0 = no cap. */
    maxDownloadsPerClient: z.number().int().nonnegative().max(1_000_000).default(16),
    /** Ingests that would leave fewer free bytes than this are refused up front. */
    minFreeBytes: byteCount.default(1024 * 1024 * 1024),
    logLevel: z.enum(['debug', 'info', 'warn', 'error', 'silent']).default('info'),
    /** Each blob is re-hashed once per this interval (spread out, not all at once); 0 = never on a schedule. */
    verifyIntervalMs: durationMs.default(7 * 24 * 60 * 60 * 1000),
    /** Integrity checks running at the same time. */
    verifyConcurrency: z.number().int().min(1).max(64).default(1),
    /** Cap on the disk read rate of integrity checks in bytes per second; 0 = unlimited. */
    verifyMaxBytesPerSec: byteCount.default(0),
    /** Re-read and re-hash every blob from disk right after it is ingested. */
    verifyAfterIngest: z.boolean().default(false),
    /** How often unreferenced blobs are collected; 0 = only by `goldmirror gc`. */
    gcIntervalMs: durationMs.default(0),
    /** Blobs younger than this are never collected. */
    gcGraceMs: durationMs.default(24 * 60 * 60 * 1000),
    /** Another goldmirror to follow (its base URL); empty = no sync. */
    syncFrom: optionalBaseUrl,
    /** API token of the mirror in syncFrom. */
    syncToken: z.string().default(''),
    /** How often to sync from syncFrom. */
    syncIntervalMs: durationMs.default(60 * 60 * 1000),
    /** The site this replica serves (a site name on the primary); with syncFrom, it reports itself by heartbeat. */
    site: z
      .string()
      .default('')
      .refine((v) => v === '' || /^[a-z0-9][a-z0-9._-]{0,63}$/.test(v), {
        message: 'must be 1-64 lower-case letters, digits, ".", "_" or "-", starting with a letter or digit',
      }),
    /** How often a replica tells its primary that it is alive and which packages it holds verified. */
    heartbeatIntervalMs: durationMs
      .min(1000)
      .max(24 * 60 * 60 * 1000)
      .default(30_000),
    /** How often the primary probes each replica (a HEAD, now and then a range compared with its own bytes). */
    replicaCheckIntervalMs: durationMs.min(1000).default(60_000),
    /** `off`: the primary serves every Mac itself, whatever sites and replicas say. */
    redirects: z.enum(['on', 'off']).default('on'),
    /**
     * Official Parallels Desktop update feeds to follow (parallels_updates.xml URLs), comma- or space-separated
     * in the environment; empty: no upstream (files can still be added by hand).
     */
    pdUpdatesUpstream: z
      .union([z.string(), z.array(z.string())])
      .default('')
      .transform((v, ctx) => {
        const urls = splitList(v);
        for (const url of urls)
          if (!isHttpUrl(url)) ctx.issues.push({ code: 'custom', message: `${url} is not an http(s) URL`, input: v });
        return Object.freeze(urls);
      }),
    /** How often the upstream feeds are read; 0 = only on demand (`goldmirror updates sync`, Sync now). */
    pdUpdatesIntervalMs: durationMs.default(6 * 60 * 60 * 1000),
    /** Publish each new upstream version as soon as its file is stored, instead of waiting for an admin. */
    pdUpdatesAutoPublish: z.boolean().default(false),
    /** Stored update files GC keeps whether published or not: the newest N versions. */
    pdUpdatesKeep: z.number().int().min(0).max(1000).default(3),
    /** Creates user `admin` at the first start when set (never changes an existing one; usually from the environment). */
    adminPassword: z.string().default(''),
    /**
     * Reverse proxies (addresses or CIDRs) whose X-Forwarded-For is believed;
     * a comma-separated list in the environment. Empty: the socket peer is the client.
     */
    trustProxy: cidrList,
    /** How long a graceful shutdown waits for running transfers. */
    shutdownTimeoutMs: durationMs.default(30_000),
    /** Addresses (CIDR blocks) that outbound fetches may reach although they are loopback, link-local, unspecified or this mirror's own. */
    fetchAllow: cidrList,
    /** Pulls from a URL (API and admin page) running at once; the rest wait as "queued". */
    fetchConcurrency: z.number().int().min(1).max(16).default(2),
    /** Rows of the download log older than this are pruned (hourly); 0 = keep them all. */
    downloadLogRetentionMs: durationMs.default(90 * 24 * 60 * 60 * 1000),
    /** Processes `serve` runs (node:cluster, sharing the listen sockets); 1 = one process, no cluster. */
    workers: workerCount,
    /** Processes sharing the database elect the one that runs the scheduled jobs by a lease this long (renewed every third). */
    leaderLeaseMs: durationMs.min(300).default(30_000),
    /** Where package bytes live: `fs` (blobs/ in the data directory) or `s3` (an S3-compatible bucket every node shares). */
    storage: z.enum(['fs', 's3']).default('fs'),
    s3Bucket: z
      .string()
      .default('')
      .refine((v) => v === '' || /^[a-z0-9][a-z0-9.\-_]{1,254}$/i.test(v), { message: 'is not a valid bucket name' }),
    /** Key prefix inside the bucket ("goldmirror/"), so one bucket can hold other things too. */
    s3Prefix: z
      .string()
      .default('')
      .refine((v) => /^[A-Za-z0-9._\-/]*$/.test(v) && !v.split('/').some((p) => p === '.' || p === '..'), {
        message: 'may hold only letters, digits, ".", "_", "-" and "/", and no "." or ".." segments',
      })
      .transform((v) => v.replace(/^\/+|\/+$/g, '').replace(/\/{2,}/g, '/')),
    /** The S3 API's base URL (MinIO, Ceph RGW, Swift, StorageGRID…); empty: AWS itself. */
    s3Endpoint: optionalBaseUrl,
    s3Region: z.string().min(1).default('us-east-1'),
    /** Bucket in the path (http://host/bucket/key) instead of the host name: what most self-hosted stores need. */
    s3ForcePathStyle: z.boolean().default(false),
    /** Both or neither; neither: the SDK's own chain (AWS_* variables, shared config files, instance roles). */
    s3AccessKeyId: z.string().default(''),
    s3SecretAccessKey: z.string().default(''),
    /** Downloads from S3: `proxy` streams the bytes through goldmirror; `redirect` answers 302 to a presigned URL. */
    s3Downloads: z.enum(['proxy', 'redirect']).default('proxy'),
    /** How long a presigned download URL of `redirect` mode stays valid (the Mac must start its request within it). */
    s3PresignExpiryMs: durationMs
      .min(1000)
      .max(7 * 24 * 60 * 60 * 1000)
      .default(5 * 60 * 1000),
  })
  .strict()
  .refine((c) => c.site === '' || c.syncFrom !== '', {
    message: 'MIRROR_SITE is for a replica: it needs MIRROR_SYNC_FROM (the primary it reports to)',
    path: ['site'],
  })
  .refine((c) => c.site === '' || c.publicUrl !== '', {
    message: "a replica (MIRROR_SITE) needs MIRROR_PUBLIC_URL: the URL its site's Macs reach it by",
    path: ['publicUrl'],
  })
  .refine((c) => c.syncFrom === '' || c.syncToken !== '', {
    message: 'MIRROR_SYNC_TOKEN is required with MIRROR_SYNC_FROM',
    path: ['syncToken'],
  })
  .refine((c) => (c.tlsCert === '') === (c.tlsKey === ''), {
    message: 'MIRROR_TLS_CERT and MIRROR_TLS_KEY go together',
    path: ['tlsKey'],
  })
  .refine((c) => c.storage !== 's3' || c.s3Bucket !== '', {
    message: 'MIRROR_S3_BUCKET is required with MIRROR_STORAGE=s3',
    path: ['s3Bucket'],
  })
  .refine((c) => c.s3Downloads === 'proxy' || c.storage === 's3', {
    message: 'redirect needs MIRROR_STORAGE=s3 (packages on disk are always streamed)',
    path: ['s3Downloads'],
  })
  .refine((c) => (c.s3AccessKeyId === '') === (c.s3SecretAccessKey === ''), {
    message: 'MIRROR_S3_ACCESS_KEY_ID and MIRROR_S3_SECRET_ACCESS_KEY go together',
    path: ['s3SecretAccessKey'],
  })
  .refine((c) => c.httpPort === 0 || c.tlsCert !== '', {
    message: 'MIRROR_HTTP_PORT is only for a plain-HTTP listener beside TLS',
    path: ['httpPort'],
  });

export type Config = Readonly<z.output<typeof configSchema>>;

type Kind = 'string' | 'int' | 'bytes' | 'duration' | 'boolean';

/** Explicit map from environment variable to config key, with how to read its text. */
export const envVars: Readonly<Record<string, { key: keyof Config; kind: Kind }>> = {
  MIRROR_HOST: { key: 'host', kind: 'string' },
  MIRROR_PORT: { key: 'port', kind: 'int' },
  MIRROR_DATA_DIR: { key: 'dataDir', kind: 'string' },
  MIRROR_DATABASE_URL: { key: 'databaseUrl', kind: 'string' },
  MIRROR_DATABASE_POOL_SIZE: { key: 'databasePoolSize', kind: 'int' },
  MIRROR_PUBLIC_URL: { key: 'publicUrl', kind: 'string' },
  MIRROR_MAX_BYTES_PER_SEC: { key: 'maxBytesPerSec', kind: 'bytes' },
  MIRROR_MAX_DOWNLOADS: { key: 'maxDownloads', kind: 'int' },
  MIRROR_MAX_DOWNLOADS_PER_CLIENT: { key: 'maxDownloadsPerClient', kind: 'int' },
  MIRROR_MIN_FREE_BYTES: { key: 'minFreeBytes', kind: 'bytes' },
  MIRROR_LOG_LEVEL: { key: 'logLevel', kind: 'string' },
  MIRROR_SHUTDOWN_TIMEOUT: { key: 'shutdownTimeoutMs', kind: 'duration' },
  MIRROR_ADMIN_PASSWORD: { key: 'adminPassword', kind: 'string' },
  MIRROR_VERIFY_INTERVAL: { key: 'verifyIntervalMs', kind: 'duration' },
  MIRROR_VERIFY_CONCURRENCY: { key: 'verifyConcurrency', kind: 'int' },
  MIRROR_VERIFY_MAX_BYTES_PER_SEC: { key: 'verifyMaxBytesPerSec', kind: 'bytes' },
  MIRROR_VERIFY_AFTER_INGEST: { key: 'verifyAfterIngest', kind: 'boolean' },
  MIRROR_GC_INTERVAL: { key: 'gcIntervalMs', kind: 'duration' },
  MIRROR_GC_GRACE: { key: 'gcGraceMs', kind: 'duration' },
  MIRROR_TLS_CERT: { key: 'tlsCert', kind: 'string' },
  MIRROR_TLS_KEY: { key: 'tlsKey', kind: 'string' },
  MIRROR_HTTP_PORT: { key: 'httpPort', kind: 'int' },
  MIRROR_SYNC_FROM: { key: 'syncFrom', kind: 'string' },
  MIRROR_SYNC_TOKEN: { key: 'syncToken', kind: 'string' },
  MIRROR_SYNC_INTERVAL: { key: 'syncIntervalMs', kind: 'duration' },
  MIRROR_FETCH_ALLOW: { key: 'fetchAllow', kind: 'string' },
  MIRROR_PD_UPDATES_UPSTREAM: { key: 'pdUpdatesUpstream', kind: 'string' },
  MIRROR_PD_UPDATES_INTERVAL: { key: 'pdUpdatesIntervalMs', kind: 'duration' },
  MIRROR_PD_UPDATES_AUTO_PUBLISH: { key: 'pdUpdatesAutoPublish', kind: 'boolean' },
  MIRROR_PD_UPDATES_KEEP: { key: 'pdUpdatesKeep', kind: 'int' },
  MIRROR_FETCH_CONCURRENCY: { key: 'fetchConcurrency', kind: 'int' },
  MIRROR_TRUST_PROXY: { key: 'trustProxy', kind: 'string' },
  MIRROR_SITE: { key: 'site', kind: 'string' },
  MIRROR_HEARTBEAT_INTERVAL: { key: 'heartbeatIntervalMs', kind: 'duration' },
  MIRROR_REPLICA_CHECK_INTERVAL: { key: 'replicaCheckIntervalMs', kind: 'duration' },
  MIRROR_REDIRECTS: { key: 'redirects', kind: 'string' },
  MIRROR_DOWNLOAD_LOG_RETENTION: { key: 'downloadLogRetentionMs', kind: 'duration' },
  // A string: the schema reads both "4" and "auto".
  MIRROR_WORKERS: { key: 'workers', kind: 'string' },
  MIRROR_LEADER_LEASE: { key: 'leaderLeaseMs', kind: 'duration' },
  MIRROR_STORAGE: { key: 'storage', kind: 'string' },
  MIRROR_S3_BUCKET: { key: 's3Bucket', kind: 'string' },
  MIRROR_S3_PREFIX: { key: 's3Prefix', kind: 'string' },
  MIRROR_S3_ENDPOINT: { key: 's3Endpoint', kind: 'string' },
  MIRROR_S3_REGION: { key: 's3Region', kind: 'string' },
  MIRROR_S3_FORCE_PATH_STYLE: { key: 's3ForcePathStyle', kind: 'boolean' },
  MIRROR_S3_ACCESS_KEY_ID: { key: 's3AccessKeyId', kind: 'string' },
  MIRROR_S3_SECRET_ACCESS_KEY: { key: 's3SecretAccessKey', kind: 'string' },
  MIRROR_S3_DOWNLOADS: { key: 's3Downloads', kind: 'string' },
  MIRROR_S3_PRESIGN_EXPIRY: { key: 's3PresignExpiryMs', kind: 'duration' },
};

/** Keys whose JSON-file value may also be written as text with a unit ("10GiB", "7d"). */
export const keyKinds: Readonly<Partial<Record<keyof Config, Kind>>> = Object.fromEntries(
  Object.values(envVars).map(({ key, kind }) => [key, kind]),
);

function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === 'http:' || url.protocol === 'https:') && !url.search && !url.hash && !url.username;
  } catch {
    return false;
  }
}

function isPostgresUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === 'postgres:' || url.protocol === 'postgresql:') && url.pathname.length > 1;
  } catch {
    return false;
  }
}
