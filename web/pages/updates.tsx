/**
 * Parallels Desktop updates: the feed URL to give the Macs, the official feeds this mirror follows, every version
 * it knows with its publish buttons, and the form that adds a .dmg downloaded elsewhere.
 */
import type { Child, FC } from 'hono/jsx';
import type { UpdateFormValues } from '../../server/http/update-form.js';
import {
  FEED_PATH,
  majorFeedPath,
  type FeedStatus,
  type UpdateView,
} from '../../server/services/pd-updates/versions.js';
import { DataTable, describedBy, Field, fieldState, PostButton } from '../components.js';
import { CopyField, CsrfField, FieldError, formatBytes, formatDate, NotReadyField } from '../layout.js';

/** How this mirror follows upstream (the configuration). */
export interface UpstreamSettings {
  /** MIRROR_PD_UPDATES_UPSTREAM */
  feeds: readonly string[];
  /** MIRROR_PD_UPDATES_INTERVAL; 0 = only on demand. */
  intervalMs: number;
  /** MIRROR_PD_UPDATES_AUTO_PUBLISH */
  autoPublish: boolean;
}

export type VersionState = 'available' | 'published' | 'waiting' | 'failed' | 'collected';

/** The one word the table shows for where a version stands. */
export function versionState(v: UpdateView): VersionState {
  if (v.state === 'stored') return v.published ? 'published' : 'available';
  return v.state;
}

const STATE_BADGES: Record<VersionState, string> = {
  published: 'ok',
  available: 'neutral',
  waiting: 'warn',
  failed: 'bad',
  collected: 'neutral',
};

const STATE_HINTS: Record<VersionState, string> = {
  published: 'in the feed Macs read',
  available: 'stored, not in the feed until published',
  waiting: 'listed upstream, not downloaded yet',
  failed: 'the last download failed',
  collected: 'garbage collection removed its file',
};

export const UpdatesPage: FC<{
  /** This mirror's public address (null while unset). */
  base: string | null;
  upstream: UpstreamSettings;
  statuses: FeedStatus[];
  versions: UpdateView[];
  /** When a Sync now of this process started, while it runs. */
  syncRunningSince: string | null;
  values: UpdateFormValues;
  fieldErrors?: Record<string, string>;
}> = ({ base, upstream, statuses, versions, syncRunningSince, values, fieldErrors = {} }) => {
  const alerts = versions.filter((v) => v.alert);
  return (
    <>
      <p class="muted">
        This mirror is the Macs’ local update server: it keeps each Parallels Desktop update file by digest and serves a{' '}
        <code>parallels_updates.xml</code> that lists the versions published here, each pointing at this mirror.
      </p>
      {alerts.length > 0 && (
        <section class="alert" role="alert" aria-labelledby="updates-alert" id="updates-alert-page">
          <h2 id="updates-alert" class="flush">
            The file behind a known upstream URL changed for {alerts.map((v) => v.version).join(', ')}
          </h2>
          <p>
            The stored file is still the one served. Check with Parallels before trusting the new bytes; the details are
            in the version’s row below.
          </p>
        </section>
      )}
      <FeedSection base={base} versions={versions} />
      <UpstreamSection upstream={upstream} statuses={statuses} syncRunningSince={syncRunningSince} />
      <VersionsSection versions={versions} />
      <AddForm values={values} fieldErrors={fieldErrors} />
    </>
  );
};

/** The URLs to give the Macs, or why there are none yet. */
const FeedSection: FC<{ base: string | null; versions: UpdateView[] }> = ({ base, versions }) => {
  const majors = [...new Set(versions.map((v) => v.major))].sort((a, b) => b - a);
  const published = versions.filter((v) => v.published && v.state === 'stored').length;
  return (
    <section class="card" aria-labelledby="feed-heading" id="feed">
      <h2 id="feed-heading">Feed URL for the Macs</h2>
      {base ? (
        <>
          <CopyField id="feed-url" label="Update feed (every published version)" value={`${base}${FEED_PATH}`} />
          {majors.map((major) => (
            <CopyField
              id={`feed-url-v${major}`}
              label={`Parallels Desktop ${major} only (the official layout)`}
              value={`${base}${majorFeedPath(major)}`}
            />
          ))}
        </>
      ) : (
        <NotReadyField
          id="feed-url"
          label="Update feed"
          reason={
            <>
              no public address is set, so there is no URL Macs could use yet.{' '}
              <a href="/admin/settings">Set the public address</a>.
            </>
          }
        />
      )}
      <p id="feed-how">
        Point the Macs at this URL as the Parallels Desktop administrator’s guide describes under “Configuring
        Individual Macs”, or set it as <code>updates_url</code> in the <code>deploy.cfg</code> of the autodeploy
        package.
      </p>
      <p class="muted">
        {published === 0
          ? 'No version is published yet: the feed lists nothing, so Macs find no update here.'
          : `The feed lists ${published} published version${published === 1 ? '' : 's'}, newest first; each FilePath is a link to this mirror.`}
      </p>
    </section>
  );
};

const UpstreamSection: FC<{
  upstream: UpstreamSettings;
  statuses: FeedStatus[];
  syncRunningSince: string | null;
}> = ({ upstream, statuses, syncRunningSince }) => {
  if (upstream.feeds.length === 0)
    return (
      <section aria-labelledby="upstream-heading" id="upstream">
        <h2 id="upstream-heading">Upstream</h2>
        <div class="card help" id="upstream-off">
          <p>
            No upstream feed is configured: this mirror serves only the versions added here with the form below (or{' '}
            <code>goldmirror updates add</code>).
          </p>
          <p>
            To follow the official feed, set <code>MIRROR_PD_UPDATES_UPSTREAM</code> to one or more feed URLs (comma- or
            space-separated) and restart goldmirror, for example:
          </p>
          <pre class="env">
            MIRROR_PD_UPDATES_UPSTREAM=https://update.parallels.com/desktop/v26/parallels/parallels_updates.xml
          </pre>
        </div>
      </section>
    );
  const byUrl = new Map(statuses.map((s) => [s.url, s]));
  const rows: Array<FeedStatus & { configured: boolean }> = [
    ...upstream.feeds.map((url) => ({
      ...(byUrl.get(url) ?? { url, checkedAt: null, okAt: null, error: null, skipped: [] }),
      configured: true,
    })),
    ...statuses.filter((s) => !upstream.feeds.includes(s.url)).map((s) => ({ ...s, configured: false })),
  ];
  return (
    <section aria-labelledby="upstream-heading" id="upstream">
      <h2 id="upstream-heading">Upstream</h2>
      <DataTable
        rows={rows}
        id="upstream-feeds"
        caption="Upstream feeds"
        columns={[
          {
            head: 'Feed',
            cell: (f) => (
              <td class="mono upstream-url">
                {f.url}
                {!f.configured && <div class="muted">no longer configured</div>}
              </td>
            ),
          },
          { head: 'Last check', cell: (f) => <td class="nowrap">{formatDate(f.checkedAt)}</td> },
          { head: 'Last success', cell: (f) => <td class="nowrap">{formatDate(f.okAt)}</td> },
          {
            head: 'Status',
            cell: (f) => (
              <td>
                {f.checkedAt === null ? (
                  <span class="badge neutral">not checked yet</span>
                ) : f.error === null ? (
                  <span class="badge ok">ok</span>
                ) : (
                  <>
                    <span class="badge bad">error</span> <span class="feed-error">{f.error}</span>
                    <div class="muted">What was read before stays served.</div>
                  </>
                )}
              </td>
            ),
          },
          {
            head: 'Skipped',
            cell: (f) => (
              <td>
                {f.skipped.length === 0 ? (
                  <span class="muted">none</span>
                ) : (
                  <ul class="compact">
                    {f.skipped.map((s) => (
                      <li>{s}</li>
                    ))}
                  </ul>
                )}
              </td>
            ),
          },
        ]}
      />
      <p id="upstream-schedule">
        {upstream.intervalMs > 0 ? (
          <>
            Checked every {interval(upstream.intervalMs)} by the process that runs the scheduled jobs (
            <code>MIRROR_PD_UPDATES_INTERVAL</code>).
          </>
        ) : (
          <>
            Checked only on demand (<code>MIRROR_PD_UPDATES_INTERVAL=0</code>): with Sync now or{' '}
            <code>goldmirror updates sync</code>.
          </>
        )}{' '}
        Auto-publish is{' '}
        {upstream.autoPublish ? (
          <>
            <strong>on</strong>: each new version is published as soon as its file is stored.
          </>
        ) : (
          <>
            <strong>off</strong>: new versions wait for an admin to publish them.
          </>
        )}{' '}
        (<code>MIRROR_PD_UPDATES_AUTO_PUBLISH</code>)
      </p>
      {syncRunningSince && (
        <p class="card pending" id="sync-running" role="status">
          A sync started here at {formatDate(syncRunningSince)} is still downloading; reload this page to follow it.
        </p>
      )}
      <div class="actions">
        <PostButton action="/admin/updates/sync">Sync now</PostButton>
        <span class="muted">Reads every feed and downloads the files not stored yet.</span>
      </div>
    </section>
  );
};

/** "6 hours", "30 minutes". */
function interval(ms: number): string {
  if (ms % 3_600_000 === 0) return plural(ms / 3_600_000, 'hour');
  if (ms % 60_000 === 0) return plural(ms / 60_000, 'minute');
  return plural(Math.round(ms / 1000), 'second');
}
const plural = (n: number, unit: string) => `${n} ${unit}${n === 1 ? '' : 's'}`;

const VersionsSection: FC<{ versions: UpdateView[] }> = ({ versions }) => {
  const newerPublished = (v: UpdateView) =>
    versions.some((o) => o.published && o.major === v.major && versions.indexOf(o) < versions.indexOf(v));
  return (
    <section aria-labelledby="versions-heading">
      <h2 id="versions-heading">Versions</h2>
      <DataTable
        rows={versions}
        id="versions"
        caption="Parallels Desktop versions"
        rowAttrs={(v) => ({ id: `v-${v.version}` })}
        empty={<p class="empty">No version yet. Sync the upstream feed, or add a .dmg below.</p>}
        columns={[
          { head: 'Version', cell: (v) => <td class="mono nowrap">{v.version}</td> },
          { head: 'Code name', cell: (v) => <td>{v.codename || <span class="muted">–</span>}</td> },
          {
            head: 'Origin',
            cell: (v) =>
              v.origin === 'upstream' ? (
                <td>
                  upstream
                  {v.upstreamUrl && (
                    <div class="muted nowrap" title={v.upstreamUrl}>
                      {hostOf(v.upstreamUrl)}
                    </div>
                  )}
                </td>
              ) : (
                <td>added here</td>
              ),
          },
          {
            head: 'State',
            cell: (v) => {
              const state = versionState(v);
              return (
                <td>
                  <span class={`badge ${STATE_BADGES[state]}`} title={STATE_HINTS[state]}>
                    {state}
                  </span>
                </td>
              );
            },
          },
          {
            head: 'Size',
            cell: (v) => <td class="nowrap">{v.size === null ? <span class="muted">–</span> : formatBytes(v.size)}</td>,
          },
          { head: 'SHA-256', cell: (v) => <DigestCell version={v} /> },
          { head: 'Downloads', cell: (v) => <td>{v.downloads}</td> },
          { head: 'Notes', cell: (v) => <NotesCell version={v} /> },
          {
            head: <span class="visually-hidden">Actions</span>,
            cell: (v) => <ActionsCell version={v} rollback={v.state === 'stored' && newerPublished(v)} />,
          },
        ]}
      />
    </section>
  );
};

/** Where an upstream file comes from, short (the whole URL is in the title). */
function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

/** The digest shortened, whole on hover and with a copy button. */
const DigestCell: FC<{ version: UpdateView }> = ({ version: v }) => {
  if (!v.sha256)
    return (
      <td>
        <span class="muted">–</span>
      </td>
    );
  const id = `sha-${v.version}`;
  return (
    <td class="nowrap">
      <code class="mono" title={v.sha256} aria-hidden="true">
        {v.sha256.slice(0, 12)}…
      </code>
      <code id={id} class="visually-hidden">
        {v.sha256}
      </code>{' '}
      <button type="button" class="secondary small" data-copy={id} aria-label={`Copy the SHA-256 of ${v.version}`}>
        Copy
      </button>
    </td>
  );
};

const NotesCell: FC<{ version: UpdateView }> = ({ version: v }) => {
  const notes: Child[] = [];
  if (v.state === 'failed')
    notes.push(
      <span class="warn-text">Download failed: {v.fetchError ?? 'unknown error'}. Sync now tries again.</span>,
    );
  if (v.state === 'collected')
    notes.push(
      v.origin === 'upstream'
        ? 'Its file was removed; a sync fetches it again while upstream lists it.'
        : 'Its file was removed; add the .dmg again to publish it.',
    );
  if (v.blobState !== null && v.blobState !== 'ok')
    notes.push(<span class="warn-text">The stored file failed its integrity check ({v.blobState}).</span>);
  if (v.origin === 'upstream' && !v.listed) notes.push('No longer listed upstream.');
  notes.push(...v.notes);
  return (
    <td>
      {v.alert && (
        <p class="alert flush" id={`alert-${v.version}`}>
          {v.alert}
          {v.alertAt && <> (noticed {formatDate(v.alertAt)})</>}
        </p>
      )}
      {notes.length === 0 && !v.alert ? (
        <span class="muted">–</span>
      ) : (
        notes.length > 0 && (
          <ul class="compact">
            {notes.map((n) => (
              <li>{n}</li>
            ))}
          </ul>
        )
      )}
    </td>
  );
};

const ActionsCell: FC<{ version: UpdateView; rollback: boolean }> = ({ version: v, rollback }) => {
  const path = `/admin/updates/${encodeURIComponent(v.version)}`;
  const stored = v.state === 'stored';
  return (
    <td class="row-actions">
      {stored && !v.published && (
        <PostButton action={`${path}/publish`} kind="" label={`Publish ${v.version}`}>
          Publish
        </PostButton>
      )}
      {v.published && (
        <PostButton action={`${path}/unpublish`} label={`Unpublish ${v.version}`}>
          Unpublish
        </PostButton>
      )}
      {rollback && (
        <PostButton
          action={`${path}/rollback`}
          label={`Roll back to ${v.version}: publish it and unpublish every newer version of ${v.major}`}
        >
          Roll back to this
        </PostButton>
      )}
      {v.alert && (
        <PostButton action={`${path}/alert-keep`} label={`Keep the stored file of ${v.version} and close the alert`}>
          Keep stored file
        </PostButton>
      )}
      {v.alert && v.alertSha256 && (
        <PostButton
          action={`${path}/alert-take`}
          label={`Take the new bytes ${v.alertSha256} as the file of ${v.version}`}
        >
          Take new file
        </PostButton>
      )}
    </td>
  );
};

/** Adds a .dmg downloaded elsewhere: the fields first, then the file, which streams into the store. */
const AddForm: FC<{ values: UpdateFormValues; fieldErrors: Record<string, string> }> = ({ values, fieldErrors }) => (
  <section aria-labelledby="add-heading" id="add">
    <h2 id="add-heading">Add a .dmg</h2>
    <p class="muted">
      For a mirror that cannot reach Parallels: download <code>ParallelsDesktop-&lt;version&gt;.dmg</code> elsewhere and
      add it here. Its feed entry is generated (FileSize in bytes); a version upstream lists whose file is not stored
      takes the file and keeps the upstream entry.
    </p>
    <form method="post" action="/admin/updates/add" enctype="multipart/form-data" class="card stack" novalidate>
      {/* First in the form, then every field before the file: the server reads them before the file streams. */}
      <CsrfField />
      <Field
        id="update-version"
        label="Version"
        class="mono"
        placeholder="26.3.3-57507"
        maxlength={40}
        required
        hint="update-version-hint"
        {...fieldState(values, fieldErrors, 'version')}
      />
      <p class="muted" id="update-version-hint">
        Major.Minor.SubMinor-build, as in the file’s name.
      </p>
      <Field
        id="update-codename"
        label="Code name (optional)"
        maxlength={200}
        {...fieldState(values, fieldErrors, 'codename')}
      />
      <label for="update-ancestors">Ancestors (optional)</label>
      <textarea
        id="update-ancestors"
        name="ancestors"
        rows={3}
        class="mono"
        {...describedBy('update-ancestors', fieldErrors.ancestors, 'update-ancestors-hint')}
      >
        {values.ancestors}
      </textarea>
      <p class="muted" id="update-ancestors-hint">
        The update uuids of the builds this one updates, one a line or comma-separated, e.g.{' '}
        <code>desktop.26.3.2.57480.en_US.parallels.mac</code>.
      </p>
      <FieldError id="update-ancestors" message={fieldErrors.ancestors} />
      <label class="check" for="update-publish">
        <input id="update-publish" name="publish" type="checkbox" value="on" checked={values.publish} /> Publish it at
        once
      </label>
      <Field
        id="update-file"
        name="file"
        label="Disk image (.dmg)"
        type="file"
        accept=".dmg"
        required
        error={fieldErrors.file}
      />
      <div class="actions">
        <button type="submit">Add the .dmg</button>
        <span class="muted">The file streams straight into the store; keep this page open until it is done.</span>
      </div>
    </form>
  </section>
);
