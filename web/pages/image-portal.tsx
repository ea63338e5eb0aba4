/** An image's page: the values to paste into the Parallels Management Portal, the link check and the group assignment. */
import type { FC } from 'hono/jsx';
import type { GroupView } from '../../server/services/groups.js';
import { ARCHES, portalValues, type Arch, type ImageView, type PortalValues } from '../../server/services/images.js';
import type { LinkCheckReport } from '../../server/services/link-check.js';
import type { PublicAddress } from '../../server/services/settings.js';
import { CopyField, CsrfField, formatBytes, formatDate, NotReadyField, StateBadge } from '../layout.js';
import { PortalChangeBox } from './portal-change.js';

export const ImagePortalPage: FC<{
  image: ImageView;
  address: PublicAddress;
  check: LinkCheckReport | null;
  assignable: GroupView[];
  groupCount?: number;
}> = ({ image, address, check, assignable, groupCount }) => {
  const portal = portalValues(image, address);
  return (
    <>
      {image.description && <p>{image.description}</p>}
      {image.portalChange && (
        <PortalChangeBox image={image} change={image.portalChange} back={`/admin/images/${image.id}`} />
      )}
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
        The check runs on the goldmirror server, not on a Mac: it fetches each Download URL (a HEAD and three ranged
        GETs) and compares sampled bytes with the stored package. It proves the mirror answers at this address, not that
        every Mac can reach it; for that, run the <code>curl -I</code> line it prints in Terminal on a Mac.
      </p>
      <form method="post" action={`/admin/images/${image.id}/check`} class="inline">
        <CsrfField />
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
                <CsrfField />
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
          <CsrfField />
          <label for="assign-group">Assign to group</label>
          <select id="assign-group" name="groupId">
            {assignable.map((g) => (
              <option value={String(g.id)}>
                {g.name}
                {g.primary ? ' (primary license key)' : ''}
              </option>
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
    </>
  );
};

/** One architecture of the portal form: "Apple silicon — enabled", then its Download URL and SHA-256. */
const ArchPortalValues: FC<{ arch: Arch; image: ImageView; portal: PortalValues; address: PublicAddress }> = ({
  arch,
  image,
  portal,
  address,
}) => {
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
                    no public address is set, so there is no link Macs could use yet.{' '}
                    <a href="/admin/settings">Set the public address</a>.
                  </>
                ) : (
                  'the package is not stored on this mirror.'
                )
              }
            />
          )}
          {a.sha256 && <CopyField id={`sha-${arch}`} label="SHA-256" value={a.sha256} />}
          <p class="muted">
            {formatBytes(a.size)} · <StateBadge state={image[arch].state} /> · {image[arch].downloads} downloads, last{' '}
            {formatDate(image[arch].lastDownloadAt)}
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
        The direct link to the <code>.pvmp</code> on this mirror. It must start with an address every Mac can reach (set
        under <a href="/admin/settings">Settings</a>) and needs no sign-in.
      </dd>
      <dt>SHA-256</dt>
      <dd>
        The package’s 64-digit checksum (the one in the <code>.txt</code> that “Prepare for Transfer” wrote); the
        download is checked against it.
      </dd>
    </dl>
    <p class="muted">
      How a Mac fetches it: when a user of an assigned group creates a virtual machine, Parallels Desktop on that Mac
      downloads the package from the Download URL with plain HTTP(S) requests (resuming with ranges after an
      interruption) and checks it against the SHA-256 before unpacking it.
    </p>
  </aside>
);

/** The last link check (shown on GET after the check's POST redirected here). */
const CheckResult: FC<{ check: LinkCheckReport; portal: PortalValues }> = ({ check, portal }) => {
  const stale = Object.entries(check.architectures).some(
    ([arch, r]) => r.url !== portal.architectures[arch as Arch]?.downloadUrl,
  );
  if (stale) {
    // A check of other links says nothing about these: do not show its verdict next to them.
    return (
      <p class="card muted" id="check-result">
        The last check ({formatDate(check.checkedAt)}) was of links that have changed since; check again.
      </p>
    );
  }
  const warned = check.warnings.length > 0;
  const headline = !check.ok
    ? 'Some links do not work.'
    : warned
      ? 'The links answer on this server, but Macs cannot reach them.'
      : 'All links work from this server.';
  return (
    <div class={`card ${!check.ok ? 'alert' : warned ? 'warned' : ''}`} id="check-result" role="status">
      {/* Steps that passed stay in normal colours; only the headline and the warnings are red when Macs cannot reach the address. */}
      <p>
        <strong class={check.ok && warned ? 'warn-text' : undefined}>{headline}</strong> Checked{' '}
        {formatDate(check.checkedAt)}.
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
