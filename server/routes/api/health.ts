/** The detailed health report (the public /healthz says only ok or a reason code). */
import { z } from '@hono/zod-openapi';
import { checkHealth } from '../../services/health.js';
import { apiApp, json, routes } from './shared.js';
import type { ApiApp, ApiDeps } from './shared.js';

const Leader = z
  .object({
    holder: z.string().openapi({ description: 'Unique per process start' }),
    host: z.string(),
    pid: z.number().int(),
    worker: z.number().int().nullable().openapi({ description: 'The worker number under `serve --workers`' }),
    listen: z.string().nullable().openapi({ description: 'The address it listens on (host:port)' }),
    since: z.string().openapi({ description: 'When it took the lease (ISO 8601)' }),
    renewedAt: z.string(),
    expiresAt: z.string().openapi({ description: 'Another process takes over after this unless it renews' }),
    live: z.boolean().openapi({ description: 'False: the lease ran out without a renewal (the leader stopped)' }),
    thisProcess: z.boolean().openapi({ description: 'True when the process that answered leads' }),
  })
  .openapi('Leader');

const Health = z
  .object({
    status: z.enum(['ok', 'unhealthy']),
    ok: z.boolean(),
    reason: z
      .enum(['DB_UNAVAILABLE', 'STORAGE_UNAVAILABLE', 'DATA_DIR_UNWRITABLE', 'DISK_LOW', 'DISK_UNKNOWN'])
      .nullable(),
    checks: z.object({
      database: z.string(),
      storage: z.string().optional().openapi({ description: 'The bucket (MIRROR_STORAGE=s3 only)' }),
      dataDir: z.string(),
      disk: z.string().openapi({ description: 'Free space of the local data directory' }),
    }),
    freeBytes: z.number().nullable(),
    minFreeBytes: z.number(),
    leader: Leader.nullable().openapi({
      description: 'The process that runs the scheduled jobs (null: none yet, or the database is unreachable)',
    }),
  })
  .openapi('Health');

const read = routes('Health')('get', '/', 'Health in detail', {
  200: json(Health, 'Healthy'),
  503: json(Health, 'Unhealthy: `reason` says why'),
});

export function healthApi(deps: ApiDeps): ApiApp {
  const app = apiApp();
  app.openapi(read, async (c) => {
    const report = await checkHealth({ ...deps, minFreeBytes: deps.config.minFreeBytes });
    // An unreachable database is reported in `checks` already.
    const leader = await deps.leadership.leader().catch(() => null);
    const body = { status: report.ok ? ('ok' as const) : ('unhealthy' as const), ...report, leader };
    return report.ok ? c.json(body, 200) : c.json(body, 503);
  });
  return app;
}
