import type { FC } from 'hono/jsx';
import type { BlobView } from '../../server/services/blobs.js';
import type { GroupView } from '../../server/services/groups.js';
import { ARCHES, ARCH_LABELS, portalValues, type Arch, type ImageView } from '../../server/services/images.js';
import type { LinkCheckReport } from '../../server/services/link-check.js';
import { CopyField, CsrfField, FieldError, formatBytes, formatDate, Layout, StateBadge } from '../layout.js';

interface Common {
  user: string;
  csrf: string;
  flash?: string | undefined;
  error?: string | undefined;
}

export const ImagesPage: FC<Common & { images: ImageView[] }> = ({ images, ...c }) => (
  <Layout title="Golden images" user={c.user} csrf={c.csrf} active="/admin/images" flash={c.flash} error={c.error}>
    <p>
      <a class="button" href="/admin/images/new">
        New golden image
      </a>
    </p>
    {images.length === 0 ? (
      <p class="muted">No golden images yet. Upload the packages first, then create an image from them.</p>
    ) : (
      <div class="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Apple silicon</th>
              <th scope="col">Intel</th>
              <th scope="col">Groups</th>
              <th scope="col" class="hide-narrow">
                Downloads
              </th>
            </tr>
          </thead>
          <tbody>
            {images.map((i) => (
              <tr>
                <td>
                  <a href={`/admin/images/${i.id}`}>{i.name}</a>
                </td>
                {ARCHES.map((arch) => (
                  <td>{i[arch].enabled ? <StateBadge state={i[arch].state} /> : <span class="muted">off</span>}</td>
                ))}
                <td>{i.groups.map((g) => g.name).join(', ') || <span class="muted">none</span>}</td>
                <td class="hide-narrow">{i.downloads}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    )}
  </Layout>
);

export interface ImageFormValues {
  name: string;
  description: string;
  arm64: { enabled: boolean; sha256: string };
  x86_64: { enabled: boolean; sha256: string };
}

export const ImageFormPage: FC<
  Common & { image: ImageView | null; values: ImageFormValues; blobs: BlobView[]; fieldErrors?: Record<string, string> }
> = ({ image, values, blobs, fieldErrors = {}, ...c }) => {
  const action = image ? `/admin/images/${image.id}/edit` : '/admin/images/new';
  const invalid = (field: string) => (fieldErrors[field] ? 'true' : undefined);
  const described = (field: string) => (fieldErrors[field] ? `${field.replace('.', '-')}-error` : undefined);
  return (
    <Layout title={image ? `Edit ${image.name}` : 'New golden image'} user={c.user} csrf={c.csrf} active="/admin/images" error={c.error}>
      <form method="post" action={action} class="card stack" novalidate>
        <CsrfField token={c.csrf} />
        <label for="name">Name (shown to users)</label>
        <input id="name" name="name" type="text" required maxlength={100} value={values.name} aria-invalid={invalid('name')} aria-describedby={described('name')} />
        <FieldError id="name" message={fieldErrors.name} />
        <label for="description">Description (optional, shown to users)</label>
        <textarea id="description" name="description" rows={3} maxlength={1000} aria-invalid={invalid('description')}>
          {values.description}
        </textarea>
        <FieldError id="description" message={fieldErrors.description} />
        {ARCHES.map((arch) => (
          <ArchFieldset arch={arch} value={values[arch]} blobs={blobs} error={fieldErrors[`${arch}.sha256`] ?? fieldErrors[arch]} />
        ))}
        <div class="actions">
          <button type="submit">{image ? 'Save changes' : 'Create golden image'}</button>
          <a href={image ? `/admin/images/${image.id}` : '/admin/images'}>Cancel</a>
        </div>
      </form>
    </Layout>
  );
};

const ArchFieldset: FC<{ arch: Arch; value: { enabled: boolean; sha256: string }; blobs: BlobView[]; error: string | undefined }> = ({
  arch,
  value,
  blobs,
  error,
}) => {
  const selected = blobs.find((b) => b.sha256 === value.sha256);
  return (
    <fieldset>
      <legend>{ARCH_LABELS[arch]}</legend>
      <label class="check" for={`${arch}-enabled`}>
        <input id={`${arch}-enabled`} name={`${arch}.enabled`} type="checkbox" value="on" checked={value.enabled} /> Enable for{' '}
        {ARCH_LABELS[arch]}
      </label>
      <label for={`${arch}-sha256`}>Package</label>
      <select id={`${arch}-sha256`} name={`${arch}.sha256`} aria-invalid={error ? 'true' : undefined} aria-describedby={error ? `${arch}-sha256-error` : undefined}>
        <option value="">— none —</option>
        {blobs.map((b) => (
          <option value={b.sha256} selected={b.sha256 === value.sha256}>
            {b.name} · {formatBytes(b.size)} · {b.sha256.slice(0, 12)}…{b.state === 'ok' ? '' : ` (${b.state})`}
          </option>
        ))}
      </select>
      <FieldError id={`${arch}-sha256`} message={error} />
      {selected && (
        <p class="muted">
          {formatBytes(selected.size)} · SHA-256 <span class="mono">{selected.sha256}</span>
        </p>
      )}
    </fieldset>
  );
};

export const ImagePortalPage: FC<
  Common & { image: ImageView; check: LinkCheckReport | null; assignable: GroupView[]; groupCount?: number }
> = ({ image, check, assignable, groupCount, ...c }) => {
  const portal = portalValues(image);
  return (
    <Layout title={image.name} user={c.user} csrf={c.csrf} active="/admin/images" flash={c.flash} error={c.error} scripts={['/admin/assets/copy.js']}>
      {image.description && <p>{image.description}</p>}
      {!portal.ready && (
        <div class="alert" role="alert">
          Not ready for the portal: {portal.problems.join('; ')}.
        </div>
      )}
      <h2>Values for the Parallels Management Portal</h2>
      <p class="muted">Paste these into the golden image form of the portal, one architecture at a time.</p>
      <div class="card">
        <CopyField id="portal-name" label="Name" value={image.name} />
        {image.description && <CopyField id="portal-description" label="Description" value={image.description} />}
      </div>
      {ARCHES.map((arch) => {
        const a = portal.architectures[arch];
        return (
          <section class="card" aria-labelledby={`h-${arch}`}>
            <h3 id={`h-${arch}`}>
              {a.label}: {a.enabled ? 'Enable for ' + a.label + ' ✓' : 'not enabled'}
            </h3>
            {a.enabled && a.downloadUrl && a.sha256 ? (
              <>
                <CopyField id={`url-${arch}`} label="Download URL" value={a.downloadUrl} />
                <CopyField id={`sha-${arch}`} label="SHA-256" value={a.sha256} />
                <p class="muted">
                  {formatBytes(a.size)} · <StateBadge state={image[arch].state} /> · {image[arch].downloads} downloads, last{' '}
                  {formatDate(image[arch].lastDownloadAt)}
                </p>
              </>
            ) : (
              <p class="muted">Leave “Enable for {a.label}” off in the portal.</p>
            )}
          </section>
        );
      })}

      <h2>Check links</h2>
      <form method="post" action={`/admin/images/${image.id}/check`} class="inline">
        <CsrfField token={c.csrf} />
        <button type="submit">Check links as a Mac would</button>
      </form>
      {check && (
        <div class={`card ${check.ok ? '' : 'alert'}`} id="check-result" role="status">
          <p>
            <strong>{check.ok ? 'All links work.' : 'Some links do not work.'}</strong> Checked {formatDate(check.checkedAt)}.
          </p>
          {Object.entries(check.architectures).map(([, result]) => (
            <div>
              <h3>
                {result.label}: {result.ok ? 'ok' : 'failed'}
              </h3>
              <ul class="steps">
                {result.steps.map((s) => (
                  <li class={s.ok ? 'ok' : 'bad'}>
                    {s.name}: {s.detail}
                  </li>
                ))}
              </ul>
            </div>
          ))}
        </div>
      )}

      <h2>Groups</h2>
      <p class="muted">Each group gets at most one golden image; only groups without one can be assigned.</p>
      {image.groups.length === 0 ? (
        <p>No group uses this image yet.</p>
      ) : (
        <ul>
          {image.groups.map((g) => (
            <li>
              {g.name}
              {g.primary ? ' (primary license key)' : ''}{' '}
              <form method="post" action={`/admin/groups/${g.id}/unassign`} class="inline">
                <CsrfField token={c.csrf} />
                <input type="hidden" name="back" value={`/admin/images/${image.id}`} />
                <button type="submit" class="secondary">
                  Remove
                </button>
              </form>
            </li>
          ))}
        </ul>
      )}
      {assignable.length > 0 ? (
        <form method="post" action={`/admin/images/${image.id}/assign`} class="card stack">
          <CsrfField token={c.csrf} />
          <label for="assign-group">Assign to group</label>
          <select id="assign-group" name="groupId">
            {assignable.map((g) => (
              <option value={String(g.id)}>{g.name}{g.primary ? ' (primary license key)' : ''}</option>
            ))}
          </select>
          <div class="actions">
            <button type="submit">Assign</button>
          </div>
        </form>
      ) : groupCount === 0 ? (
        <p class="muted">
          No groups yet. <a href="/admin/groups">Create a group</a> to assign this image to it.
        </p>
      ) : (
        <p class="muted">
          Every group already has a golden image. <a href="/admin/groups">Create a group</a>.
        </p>
      )}

      <div class="actions">
        <a class="button secondary" href={`/admin/images/${image.id}/edit`}>
          Edit
        </a>
        <a class="button secondary" href={`/admin/images/${image.id}/delete`}>
          Delete…
        </a>
      </div>
    </Layout>
  );
};

export const ImageDeletePage: FC<Common & { image: ImageView }> = ({ image, ...c }) => (
  <Layout title={`Delete ${image.name}?`} user={c.user} csrf={c.csrf} active="/admin/images">
    <div class="card">
      <p>Deleting a golden image cannot be undone. The packages stay stored until garbage collection removes them.</p>
      {image.groups.length > 0 ? (
        <p>
          <strong>These groups will be left without a golden image:</strong> {image.groups.map((g) => g.name).join(', ')}.
        </p>
      ) : (
        <p>No group uses this image.</p>
      )}
      <form method="post" action={`/admin/images/${image.id}/delete`} class="actions">
        <CsrfField token={c.csrf} />
        <button type="submit" class="danger">
          Delete {image.name}
        </button>
        <a href={`/admin/images/${image.id}`}>Cancel</a>
      </form>
    </div>
  </Layout>
);
