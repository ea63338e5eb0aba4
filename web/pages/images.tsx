import type { FC } from 'hono/jsx';
import type { BlobView } from '../../server/services/blobs.js';
import type { GroupView } from '../../server/services/groups.js';
import { ARCHES, ARCH_LABELS, portalValues, type Arch, type ImageView, type PortalValues } from '../../server/services/images.js';
import type { LinkCheckReport } from '../../server/services/link-check.js';
import type { PortalChange, PortalFieldChange } from '../../server/services/portal-changes.js';
import type { PublicAddress } from '../../server/services/settings.js';
import { CopyField, CsrfField, FieldError, formatBytes, formatDate, Layout, NotReadyField, StateBadge } from '../layout.js';

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
  Common & { image: ImageView | null; values: ImageFormValues; blobs: BlobView[]; fieldErrors?: Record<string, string>; archWarnings?: string[] }
> = ({ image, values, blobs, fieldErrors = {}, archWarnings = [], ...c }) => {
  const action = image ? `/admin/images/${image.id}/edit` : '/admin/images/new';
  const invalid = (field: string) => (fieldErrors[field] ? 'true' : undefined);
  const described = (field: string) => (fieldErrors[field] ? `${field.replace('.', '-')}-error` : undefined);
  return (
    <Layout
      title={image ? `Edit ${image.name}` : 'New golden image'}
      user={c.user}
      csrf={c.csrf}
      active="/admin/images"
      error={c.error}
      scripts={['/admin/assets/image-form.js']}
    >
      <form method="post" action={action} class="card stack" novalidate>
        <CsrfField token={c.csrf} />
        {archWarnings.length > 0 && (
          <div class="alert" role="alert" id="arch-warnings">
            <p>
              <strong>Check the architectures before saving:</strong>
            </p>
            <ul>
              {archWarnings.map((w) => (
                <li>{w}.</li>
              ))}
            </ul>
            <label class="check" for="confirm-arch">
              <input id="confirm-arch" type="checkbox" name="confirmArch" value="yes" /> The packages are right; use them anyway
            </label>
          </div>
        )}
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

const PackageOption: FC<{ blob: BlobView; selected: boolean }> = ({ blob, selected }) => (
  <option value={blob.sha256} selected={selected} data-arch={blob.arch}>
    {blob.name} · {formatBytes(blob.size)} · {blob.sha256.slice(0, 12)}…{blob.state === 'ok' ? '' : ` (${blob.state})`}
  </option>
);

/**
 * One architecture slot. Its picker offers the packages marked for this
 * architecture, then those whose architecture was never recorded; a package
 * marked for the other one appears only when it is already the choice, with a warning.
 */
const ArchFieldset: FC<{ arch: Arch; value: { enabled: boolean; sha256: string }; blobs: BlobView[]; error: string | undefined }> = ({
  arch,
  value,
  blobs,
  error,
}) => {
  const selected = blobs.find((b) => b.sha256 === value.sha256);
  const marked = blobs.filter((b) => b.arch === arch);
  const unmarked = blobs.filter((b) => b.arch === 'unknown');
  const wrong = selected && selected.arch !== arch && selected.arch !== 'unknown' ? selected : undefined;
  const other = ARCH_LABELS[arch === 'arm64' ? 'x86_64' : 'arm64'];
  return (
    <fieldset data-slot={arch}>
      <legend>{ARCH_LABELS[arch]}</legend>
      <label class="check" for={`${arch}-enabled`}>
        <input id={`${arch}-enabled`} name={`${arch}.enabled`} type="checkbox" value="on" checked={value.enabled} /> Enable for{' '}
        {ARCH_LABELS[arch]}
      </label>
      <label for={`${arch}-sha256`}>Package</label>
      <select
        id={`${arch}-sha256`}
        name={`${arch}.sha256`}
        data-slot={arch}
        aria-invalid={error ? 'true' : undefined}
        aria-describedby={[error ? `${arch}-sha256-error` : '', `${arch}-arch-warning`].filter(Boolean).join(' ')}
      >
        <option value="">— none —</option>
        {marked.length > 0 && (
          <optgroup label={`Marked ${ARCH_LABELS[arch]}`}>
            {marked.map((b) => (
              <PackageOption blob={b} selected={b.sha256 === value.sha256} />
            ))}
          </optgroup>
        )}
        {unmarked.length > 0 && (
          <optgroup label="Architecture not recorded">
            {unmarked.map((b) => (
              <PackageOption blob={b} selected={b.sha256 === value.sha256} />
            ))}
          </optgroup>
        )}
        {wrong && (
          <optgroup label={`Marked ${other}`}>
            <PackageOption blob={wrong} selected />
          </optgroup>
        )}
      </select>
      <FieldError id={`${arch}-sha256`} message={error} />
      <p class="field-error warn" id={`${arch}-arch-warning`} data-other={other} data-label={ARCH_LABELS[arch]} hidden={!wrong}>
        {wrong ? `This package is marked for ${other}, not ${ARCH_LABELS[arch]}.` : ''}
      </p>
      {selected && (
        <p class="muted">
          {formatBytes(selected.size)} · SHA-256 <span class="mono">{selected.sha256}</span>
        </p>
      )}
      {marked.length === 0 && unmarked.length === 0 && !wrong && (
        <p class="muted">
          No package for {ARCH_LABELS[arch]} yet. <a href="/admin/upload">Upload one</a>.
        </p>
      )}
    </fieldset>
  );
};

export const ImagePortalPage: FC<
  Common & { image: ImageView; address: PublicAddress; check: LinkCheckReport | null; assignable: GroupView[]; groupCount?: number }
> = ({ image, address, check, assignable, groupCount, ...c }) => {
  const portal = portalValues(image, address);
  return (
    <Layout title={image.name} user={c.user} csrf={c.csrf} active="/admin/images" flash={c.flash} error={c.error} scripts={['/admin/assets/copy.js']}>
      {image.description && <p>{image.description}</p>}
      {image.portalChange && <PortalChangeBox image={image} change={image.portalChange} csrf={c.csrf} back={`/admin/images/${image.id}`} />}
      {!portal.ready && (
        <div class="alert" role="alert" id="not-ready">
          Not ready for the portal: {portal.problems.join('; ')}.
        </div>
      )}
      <h2>Values for the Parallels Management Portal</h2>
      <p class="muted">Paste these into the golden image form of the portal, one architecture at a time.</p>
      <div class="card">
        <CopyField id="portal-name" label="Name" value={image.name} />
        {image.description && <CopyField id="portal-description" label="Description" value={image.description} />}
      </div>
      {ARCHES.map((arch) => (
        <ArchPortalValues arch={arch} image={image} portal={portal} address={address} />
      ))}
      <PortalHelp />

      <h2 id="check">Check links</h2>
      <p class="muted">
        The check runs on the goldmirror server, not on a Mac: it fetches each Download URL (a HEAD and three ranged GETs) and compares sampled bytes
        with the stored package. It proves the mirror answers at this address, not that every Mac can reach it; for that, run the{' '}
        <code>curl -I</code> line it prints in Terminal on a Mac.
      </p>
      <form method="post" action={`/admin/images/${image.id}/check`} class="inline">
        <CsrfField token={c.csrf} />
        <button type="submit">Check links as a Mac would</button>
      </form>
      {check && <CheckResult check={check} portal={portal} />}

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
      <p>
        Deleting a golden image cannot be undone. Delete it in the portal too. Its packages become “retired”: garbage collection keeps them for the
        grace period (MIRROR_GC_GRACE) after this and after their last download, in case a Mac still fetches them.
      </p>
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

/** One architecture of the portal form: "Apple silicon — enabled", then its Download URL and SHA-256. */
const ArchPortalValues: FC<{ arch: Arch; image: ImageView; portal: PortalValues; address: PublicAddress }> = ({ arch, image, portal, address }) => {
  const a = portal.architectures[arch];
  return (
    <section class="card" aria-labelledby={`h-${arch}`}>
      <h3 id={`h-${arch}`}>
        {a.label} — {a.enabled ? 'enabled' : 'not enabled'}
      </h3>
      {!a.enabled ? (
        <p class="muted">Leave “Enable for {a.label}” off in the portal.</p>
      ) : (
        <>
          <p class="muted">Tick “Enable for {a.label}” in the portal.</p>
          {a.downloadUrl ? (
            <>
              <CopyField id={`url-${arch}`} label="Download URL" value={a.downloadUrl} />
              {address.warnings.map((w) => (
                <p class="warn-text">{w}</p>
              ))}
            </>
          ) : (
            <NotReadyField
              id={`url-${arch}`}
              label="Download URL"
              reason={
                address.url === null ? (
                  <>
                    no public address is set, so there is no link Macs could use yet. <a href="/admin/settings">Set the public address</a>.
                  </>
                ) : (
                  'the package is not stored on this mirror.'
                )
              }
            />
          )}
          {a.sha256 && <CopyField id={`sha-${arch}`} label="SHA-256" value={a.sha256} />}
          <p class="muted">
            {formatBytes(a.size)} · <StateBadge state={image[arch].state} /> · {image[arch].downloads} downloads, last {formatDate(image[arch].lastDownloadAt)}
          </p>
        </>
      )}
    </section>
  );
};

/** What each field of the portal's form expects, and how a Mac uses the link. */
const PortalHelp: FC = () => (
  <aside class="card help" aria-labelledby="portal-help">
    <h3 id="portal-help">What goes where in the portal</h3>
    <dl>
      <dt>Name, Description</dt>
      <dd>Shown to the users of the groups you assign; the description is optional.</dd>
      <dt>Enable for Apple silicon / Intel</dt>
      <dd>Tick an architecture only when it has a package here; Macs of the other kind are then offered nothing.</dd>
      <dt>Download URL</dt>
      <dd>
        The direct link to the <code>.pvmp</code> on this mirror. It must start with an address every Mac can reach (set under{' '}
        <a href="/admin/settings">Settings</a>) and needs no sign-in.
      </dd>
      <dt>SHA-256</dt>
      <dd>The package’s 64-digit checksum (the one in the <code>.txt</code> that “Prepare for Transfer” wrote); the download is checked against it.</dd>
    </dl>
    <p class="muted">
      How a Mac fetches it: when a user of an assigned group creates a virtual machine, Parallels Desktop on that Mac downloads the package from the
      Download URL with plain HTTP(S) requests (resuming with ranges after an interruption) and checks it against the SHA-256 before unpacking it.
    </p>
  </aside>
);

const fieldLabel: Record<PortalFieldChange['field'], string> = { enabled: 'Enable', downloadUrl: 'Download URL', sha256: 'SHA-256' };

function shown(value: PortalFieldChange['from']): string {
  if (value === true) return 'on';
  if (value === false) return 'off';
  return value ?? 'not ready';
}

/** "Portal values changed — update the portal": old and new side by side, and the button that marks it done. */
export const PortalChangeBox: FC<{ image: { id: number; name: string }; change: PortalChange; csrf: string; back: string; heading?: 'h2' | 'h3' }> = ({
  image,
  change,
  csrf,
  back,
  heading = 'h2',
}) => {
  const Heading = heading;
  return (
    <section class="card pending changes" aria-labelledby={`change-${image.id}`} data-pending-image={String(image.id)}>
      <Heading id={`change-${image.id}`}>
        Portal values changed — update the portal{heading === 'h3' ? `: ${image.name}` : ''}
      </Heading>
      <p>
        {change.since ? `Since ${formatDate(change.since)}, t` : 'T'}he portal needs other values than those last confirmed on {formatDate(change.confirmedAt)}. Until
        you copy the new values into the portal, Macs keep getting the old ones, and the old packages are kept.
      </p>
      <div class="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">Field</th>
              <th scope="col">In the portal now</th>
              <th scope="col">New value</th>
            </tr>
          </thead>
          <tbody>
            {change.changes.map((ch) => (
              <tr>
                <th scope="row">
                  {ch.label}: {fieldLabel[ch.field]}
                </th>
                <td class="old">{shown(ch.from)}</td>
                <td class="new">{shown(ch.to)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <form method="post" action={`/admin/images/${image.id}/portal/confirm`} class="actions">
        <CsrfField token={csrf} />
        <input type="hidden" name="fingerprint" value={change.fingerprint} />
        <input type="hidden" name="back" value={back} />
        <button type="submit">I updated the portal</button>
        {heading === 'h3' && <a href={`/admin/images/${image.id}`}>Open {image.name}</a>}
      </form>
    </section>
  );
};

/** The last link check (shown on GET after the check's POST redirected here). */
const CheckResult: FC<{ check: LinkCheckReport; portal: PortalValues }> = ({ check, portal }) => {
  const stale = Object.entries(check.architectures).some(([arch, r]) => r.url !== portal.architectures[arch as Arch]?.downloadUrl);
  if (stale) {
    // A check of other links says nothing about these: do not show its verdict next to them.
    return (
      <p class="card muted" id="check-result">
        The last check ({formatDate(check.checkedAt)}) was of links that have changed since; check again.
      </p>
    );
  }
  const warned = check.warnings.length > 0;
  const headline = !check.ok ? 'Some links do not work.' : warned ? 'The links answer on this server, but Macs cannot reach them.' : 'All links work from this server.';
  return (
    <div class={`card ${!check.ok ? 'alert' : warned ? 'warned' : ''}`} id="check-result" role="status">
      {/* Steps that passed stay in normal colours; only the headline and the warnings are red when Macs cannot reach the address. */}
      <p>
        <strong class={check.ok && warned ? 'warn-text' : undefined}>{headline}</strong> Checked {formatDate(check.checkedAt)}.
      </p>
      <p class="muted">{check.note}</p>
      {check.warnings.map((w) => (
        <p class="warn-text">{w}</p>
      ))}
      {Object.entries(check.architectures).map(([arch, result]) => (
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
          {result.curl && <CopyField id={`curl-${arch}`} label="Confirm on a Mac (Terminal)" value={result.curl} />}
        </div>
      ))}
    </div>
  );
};
