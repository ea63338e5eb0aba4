/** Packages: the list, a package's page, its architecture, a check now, and deletion. */
import { Hono } from 'hono';
import {
  deleteBlob,
  downloadCountOf,
  getBlobView,
  listPackageViews,
  updateBlobArch,
} from '../../server/services/blobs.js';
import type { Sha256 } from '../../storage/digest.js';
import { baseOf, done, type WebDeps, type WebEnv } from '../env.js';
import { field } from '../forms.js';
import { BlobPage, BlobsPage } from '../pages/blobs.js';

const active = '/admin/blobs';

export function blobRoutes(deps: WebDeps): Hono<WebEnv> {
  const app = new Hono<WebEnv>();

  app.get('/', async (c) =>
    c.render(<BlobsPage blobs={await listPackageViews(deps, baseOf(c))} graceMs={deps.config.gcGraceMs} />, {
      title: 'Packages',
      active,
    }),
  );
  app.get('/:sha256', async (c) => {
    const blob = await getBlobView(deps, c.req.param('sha256'), baseOf(c));
    return c.render(
      <BlobPage blob={blob} downloads={await downloadCountOf(deps, blob.sha256)} graceMs={deps.config.gcGraceMs} />,
      {
        title: blob.name,
        active,
        scripts: ['/admin/assets/copy.js'],
      },
    );
  });
  app.post('/:sha256/verify', async (c) => {
    const blob = await getBlobView(deps, c.req.param('sha256'), baseOf(c));
    void deps.checker.check(blob.sha256 as Sha256).catch(() => undefined);
    return done(c, '/admin', 'verify-started');
  });
  app.post('/:sha256/arch', async (c) => {
    const form = await c.req.parseBody();
    const blob = await updateBlobArch(deps, c.get('actor'), c.req.param('sha256'), field(form, 'arch'), baseOf(c));
    return done(c, `/admin/blobs/${blob.sha256}`, 'blob-arch-saved');
  });
  app.post('/:sha256/delete', async (c) => {
    const form = await c.req.parseBody();
    const blob = await getBlobView(deps, c.req.param('sha256'), baseOf(c));
    if (form.confirm !== 'yes') {
      c.status(400);
      return c.render(<BlobPage blob={blob} downloads={0} graceMs={deps.config.gcGraceMs} />, {
        title: blob.name,
        active,
        error: 'Tick the box to confirm the deletion.',
        scripts: ['/admin/assets/copy.js'],
      });
    }
    await deleteBlob(deps, c.get('actor'), blob.sha256, baseOf(c));
    return done(c, '/admin/blobs', 'blob-deleted');
  });
  return app;
}
