/**
 * Getting packages in: the upload page, the plain multipart upload (received
 * by server/http/form-upload.ts, beside tus), discarding an unfinished tus
 * upload, and pulling a package from a URL.
 */
import { Hono } from 'hono';
import { AppError, toAppError } from '../../server/errors.js';
import { receiveFormUpload } from '../../server/http/form-upload.js';
import { parseSha256 } from '../../storage/digest.js';
import { csrfOf, type WebContext, type WebDeps, type WebEnv } from '../env.js';
import { field, formError, type FormError } from '../forms.js';
import { UploadPage } from '../pages/upload.js';

const HTTP_URL = /^https?:\/\/\S+$/i;

export function uploadRoutes(deps: WebDeps): Hono<WebEnv> {
  const app = new Hono<WebEnv>();

  const page = async (
    c: WebContext,
    extra: {
      fetchValues?: { url: string; sha256: string; checksumUrl: string };
      error?: string;
      status?: FormError['status'] | 507;
    } = {},
  ) => {
    c.status(extra.status ?? 200);
    return c.render(
      <UploadPage
        jobs={await deps.transfers.list()}
        unfinished={await deps.uploads.listUnfinished()}
        nowMs={deps.clock.now()}
        fetchValues={extra.fetchValues}
      />,
      {
        title: 'Upload packages',
        active: '/admin/upload',
        error: extra.error,
        // In this order: defer keeps it, and each script uses what the ones before it defined.
        scripts: [
          '/admin/assets/tus.min.js',
          '/admin/assets/upload-pick.js',
          '/admin/assets/upload-tus.js',
          '/admin/assets/upload.js',
        ],
      },
    );
  };

  app.get('/upload', (c) => page(c));
  app.post('/upload', async (c) => {
    try {
      const { sha256, checksumCompared } = await receiveFormUpload(deps.ingestDeps, c.req.raw, csrfOf(c));
      return c.redirect(
        `/admin/blobs/${sha256}?done=${checksumCompared ? 'blob-uploaded' : 'blob-uploaded-unchecked'}`,
        303,
      );
    } catch (err) {
      if (toAppError(err).code === 'FORBIDDEN') throw err;
      const e = formError(err);
      // A full disk keeps its own status (507), like the API and tus answer it.
      const status = toAppError(err).code === 'INSUFFICIENT_STORAGE' ? 507 : e.status;
      return page(c, { error: e.message, status });
    }
  });
  app.post('/uploads/:id/discard', async (c) => {
    try {
      await deps.uploads.discard(c.req.param('id'));
    } catch (err) {
      const e = formError(err);
      return page(c, { error: e.message, status: e.status });
    }
    return c.redirect('/admin/upload?done=upload-discarded#unfinished', 303);
  });
  app.post('/fetch', async (c) => {
    const form = await c.req.parseBody();
    const values = {
      url: field(form, 'url').trim(),
      sha256: field(form, 'sha256').trim(),
      checksumUrl: field(form, 'checksumUrl').trim(),
    };
    try {
      if (!HTTP_URL.test(values.url))
        throw new AppError('VALIDATION_FAILED', 'enter the http:// or https:// URL of the package');
      if (values.checksumUrl && !HTTP_URL.test(values.checksumUrl))
        throw new AppError('VALIDATION_FAILED', 'the checksum file URL must start with http:// or https://');
      const expected = values.sha256 ? parseSha256(values.sha256, 'the SHA-256') : undefined;
      await deps.transfers.startFetch(values.url, {
        expectedSha256: expected,
        checksumUrl: values.checksumUrl || undefined,
      });
      return c.redirect('/admin/upload?done=fetch-started#pull', 303);
    } catch (err) {
      const e = formError(err);
      return page(c, { fetchValues: values, error: e.message, status: e.status });
    }
  });
  app.post('/fetch/:id/cancel', async (c) => {
    await deps.transfers.cancel(c.req.param('id'));
    return c.redirect('/admin/upload?done=fetch-cancelled#pull', 303);
  });
  return app;
}
