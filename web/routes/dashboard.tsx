/** The dashboard, and starting or cancelling the integrity checks of every package. */
import { Hono } from 'hono';
import { listPackageViews, recentDownloads } from '../../server/services/blobs.js';
import { downloadCharts, downloadOrigins } from '../../server/services/download-log.js';
import { listGroups } from '../../server/services/groups.js';
import { listHistory } from '../../server/services/history.js';
import { listImages } from '../../server/services/images.js';
import { integritySummary } from '../../server/services/integrity.js';
import { listUpdates } from '../../server/services/pd-updates/versions.js';
import { baseOf, done, type WebDeps, type WebEnv } from '../env.js';
import { DashboardPage, type BucketUsage } from '../pages/dashboard.js';

export function dashboardRoutes(deps: WebDeps): Hono<WebEnv> {
  const app = new Hono<WebEnv>();

  app.get('/', async (c) => {
    const [usage, bucket, blobs, images, groups, integrity, recentChanges, charts, origins, leader] = await Promise.all(
      [
        deps.store.diskUsage(),
        bucketUsage(deps.store),
        listPackageViews(deps, baseOf(c)),
        listImages(deps, baseOf(c)),
        listGroups(deps),
        integritySummary(deps),
        listHistory(deps, { limit: 10 }).then((h) => h.entries),
        downloadCharts(deps),
        downloadOrigins(deps),
        deps.leadership.leader(),
      ],
    );
    const [stats, updates] = await Promise.all([recentDownloads(deps, 10), listUpdates(deps)]);
    const byBlob = new Map(blobs.map((b) => [b.sha256, b]));
    return c.render(
      <DashboardPage
        data={{
          disk: { ...usage, blobBytes: blobs.reduce((n, b) => n + b.size, 0) },
          bucket,
          blobCount: blobs.length,
          imageCount: images.length,
          groupCount: groups.length,
          integrity,
          checks: deps.checker.status(),
          recentDownloads: stats.map((s) => ({
            sha256: s.sha256,
            name: byBlob.get(s.sha256)?.name ?? s.sha256.slice(0, 12),
            downloads: s.downloads,
            lastDownloadAt: s.lastDownloadAt,
            images: [...new Set(byBlob.get(s.sha256)?.usedBy.map((u) => u.imageName) ?? [])],
          })),
          recentChanges,
          pendingPortal: images.flatMap((i) =>
            i.portalChange ? [{ id: i.id, name: i.name, change: i.portalChange }] : [],
          ),
          charts,
          origins,
          leader,
          updateAlerts: updates.versions.flatMap((v) => (v.alert ? [{ version: v.version, message: v.alert }] : [])),
        }}
      />,
      { title: 'Dashboard', active: '/admin' },
    );
  });

  app.post('/verify', (c) => {
    void deps.checker.checkAll().catch((err: unknown) => deps.log.error({ err }, 'verify all failed'));
    return done(c, '/admin', 'verify-started');
  });
  app.post('/verify/cancel', (c) => {
    deps.checker.cancel();
    return done(c, '/admin', 'verify-cancelled');
  });
  return app;
}

/** On S3, the bucket's blobs (a listing, cached by the store); a bucket that does not answer is shown, not fatal. */
async function bucketUsage(store: WebDeps['store']): Promise<BucketUsage | undefined> {
  if (!store.bucketUsage) return undefined;
  try {
    return { location: store.location, ...(await store.bucketUsage()) };
  } catch (err) {
    return { location: store.location, error: err instanceof Error ? err.message : String(err) };
  }
}
