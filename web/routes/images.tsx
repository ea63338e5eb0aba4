/** Golden images: list, form, the portal page with its link check and group assignment, and deletion. */
import { Hono } from 'hono';
import { archMismatchWarnings, listPackageViews } from '../../server/services/blobs.js';
import { listGroups, updateGroup } from '../../server/services/groups.js';
import {
  ARCHES,
  ARCH_LABELS,
  createImage,
  deleteImage,
  getImage,
  listImages,
  updateImage,
  type ImageView,
} from '../../server/services/images.js';
import { checkImageLinks, type LinkCheckReport } from '../../server/services/link-check.js';
import { lastLinkCheck, saveLinkCheck } from '../../server/services/link-check-results.js';
import { confirmPortalValues } from '../../server/services/portal-changes.js';
import { parseId } from '../../server/services/validation.js';
import { addressOf, baseOf, done, type WebContext, type WebDeps, type WebEnv } from '../env.js';
import {
  field,
  formError,
  imageInput,
  imageValues,
  imageViewValues,
  prefilledImageValues,
  type FormError,
  type ParsedForm,
} from '../forms.js';
import { ImageFormPage, type ImageFormValues } from '../pages/image-form.js';
import { ImagePortalPage } from '../pages/image-portal.js';
import { ImageDeletePage, ImagesPage } from '../pages/images.js';

const active = '/admin/images';

export function imageRoutes(deps: WebDeps): Hono<WebEnv> {
  const app = new Hono<WebEnv>();

  /** The new or edit form, again with what was sent, its problems, or the architecture warnings to confirm. */
  const formPage = async (
    c: WebContext,
    image: ImageView | null,
    values: ImageFormValues,
    extra: { error?: FormError; archWarnings?: string[] } = {},
  ) => {
    c.status(extra.archWarnings ? 409 : (extra.error?.status ?? 200));
    return c.render(
      <ImageFormPage
        image={image}
        values={values}
        blobs={await listPackageViews(deps, baseOf(c))}
        fieldErrors={extra.error?.fields}
        archWarnings={extra.archWarnings}
      />,
      {
        title: image ? `Edit ${image.name}` : 'New golden image',
        active,
        error: extra.error?.message,
        flash: null,
        scripts: ['/admin/assets/image-form.js'],
      },
    );
  };

  /** A package marked for the other architecture is saved only once the admin ticked "use it anyway". */
  const unconfirmedArchWarnings = async (
    c: WebContext,
    form: ParsedForm,
    values: ImageFormValues,
  ): Promise<string[]> => {
    if (form.confirmArch === 'yes') return [];
    const wanted = ARCHES.map((arch) => values[arch].sha256).filter((sha) => sha !== '');
    if (wanted.length === 0) return [];
    const byDigest = new Map((await listPackageViews(deps, baseOf(c))).map((b) => [b.sha256, b]));
    return archMismatchWarnings(
      ARCHES.map((arch) => {
        const blob = byDigest.get(values[arch].sha256);
        return { arch, label: ARCH_LABELS[arch], packageName: blob?.name ?? null, packageArch: blob?.arch ?? null };
      }),
    );
  };

  const portalPage = async (c: WebContext, image: ImageView, check: LinkCheckReport | null, error?: FormError) => {
    const groups = await listGroups(deps);
    const assignable = groups.filter((g) => g.imageId === null);
    c.status(error?.status ?? 200);
    return c.render(
      <ImagePortalPage
        image={image}
        address={addressOf(c)}
        check={check}
        assignable={assignable}
        groupCount={groups.length}
      />,
      {
        title: image.name,
        active,
        error: error?.message,
        scripts: ['/admin/assets/copy.js'],
      },
    );
  };

  app.get('/', async (c) =>
    c.render(<ImagesPage images={await listImages(deps, baseOf(c))} />, { title: 'Golden images', active }),
  );
  app.get('/new', (c) => formPage(c, null, prefilledImageValues(c)));
  app.post('/new', async (c) => {
    const form = await c.req.parseBody();
    const values = imageValues(form);
    const archWarnings = await unconfirmedArchWarnings(c, form, values);
    if (archWarnings.length > 0) return formPage(c, null, values, { archWarnings });
    try {
      const image = await createImage(deps, c.get('actor'), imageInput(values), baseOf(c));
      return done(c, `/admin/images/${image.id}`, 'image-created');
    } catch (err) {
      return formPage(c, null, values, { error: formError(err) });
    }
  });
  app.get('/:id', async (c) => {
    const image = await getImage(deps, parseId(c.req.param('id'), 'image'), baseOf(c));
    return portalPage(c, image, await lastLinkCheck(deps, image.id));
  });
  // Post/redirect/get: the result is stored and shown by the GET, so a reload does not check again.
  app.post('/:id/check', async (c) => {
    const image = await getImage(deps, parseId(c.req.param('id'), 'image'), baseOf(c));
    await saveLinkCheck(deps, image.id, await checkImageLinks(deps, image, addressOf(c)));
    return c.redirect(`/admin/images/${image.id}?done=links-checked#check`, 303);
  });
  app.post('/:id/portal/confirm', async (c) => {
    const id = parseId(c.req.param('id'), 'image');
    const form = await c.req.parseBody();
    const back = field(form, 'back') === '/admin' ? '/admin' : `/admin/images/${id}`;
    try {
      await confirmPortalValues(deps, c.get('actor'), id, baseOf(c), field(form, 'fingerprint') || undefined);
      return done(c, back, 'portal-confirmed');
    } catch (err) {
      const e = formError(err);
      return portalPage(c, await getImage(deps, id, baseOf(c)), await lastLinkCheck(deps, id), e);
    }
  });
  app.get('/:id/edit', async (c) => {
    const image = await getImage(deps, parseId(c.req.param('id'), 'image'), baseOf(c));
    return formPage(c, image, imageViewValues(image));
  });
  app.post('/:id/edit', async (c) => {
    const id = parseId(c.req.param('id'), 'image');
    const image = await getImage(deps, id, baseOf(c));
    const form = await c.req.parseBody();
    const values = imageValues(form);
    const archWarnings = await unconfirmedArchWarnings(c, form, values);
    if (archWarnings.length > 0) return formPage(c, image, values, { archWarnings });
    try {
      await updateImage(deps, c.get('actor'), id, imageInput(values), baseOf(c));
      return done(c, `/admin/images/${id}`, 'image-saved');
    } catch (err) {
      return formPage(c, image, values, { error: formError(err) });
    }
  });
  app.get('/:id/delete', async (c) => {
    const image = await getImage(deps, parseId(c.req.param('id'), 'image'), baseOf(c));
    return c.render(<ImageDeletePage image={image} />, { title: `Delete ${image.name}?`, active, flash: null });
  });
  app.post('/:id/delete', async (c) => {
    await deleteImage(deps, c.get('actor'), parseId(c.req.param('id'), 'image'), baseOf(c));
    return done(c, '/admin/images', 'image-deleted');
  });
  app.post('/:id/assign', async (c) => {
    const id = parseId(c.req.param('id'), 'image');
    const form = await c.req.parseBody();
    try {
      await updateGroup(deps, c.get('actor'), parseId(field(form, 'groupId'), 'group'), { imageId: id });
      return done(c, `/admin/images/${id}`, 'group-assigned');
    } catch (err) {
      const e = formError(err);
      return portalPage(c, await getImage(deps, id, baseOf(c)), null, e);
    }
  });
  return app;
}
