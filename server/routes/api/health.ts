/** The detailed health report (the public /healthz says only ok or a reason code). */
import { z } from '@hono/zod-openapi';
import { checkHealth } from '../../services/health.js';
import { apiApp, json, routes } from './shared.js';
import type { ApiApp, ApiDeps } from './shared.js';

const Health = z
  .object({
    status: z.enum(['ok', 'unhealthy']),
    ok: z.boolean(),
    reason: z.enum(['DB_UNAVAILABLE', 'DATA_DIR_UNWRITABLE', 'DISK_LOW', 'DISK_UNKNOWN']).nullable(),
    checks: z.object({ database: z.string(), dataDir: z.string(), disk: z.string() }),
    freeBytes: z.number().nullable(),
    minFreeBytes: z.number(),
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
    const body = { status: report.ok ? ('ok' as const) : ('unhealthy' as const), ...report };
    return report.ok ? c.json(body, 200) : c.json(body, 503);
  });
  return app;
}
