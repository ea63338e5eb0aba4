/**
 * Sites and replicas: the offices whose Macs this mirror sends to a replica
 * in their own building, the replicas that report to it, and why a given
 * Mac goes where it goes.
 */
import type { Child, FC } from 'hono/jsx';
import type { ReplicaState, ReplicaView } from '../../server/services/replicas.js';
import type { RouteDecision } from '../../server/services/routing.js';
import type { SiteView } from '../../server/services/sites.js';
import { ConfirmForm, DataTable, describedBy, Field, fieldState, PostButton } from '../components.js';
import { CsrfField, FieldError, formatDate } from '../layout.js';

export interface SiteFormValues {
  name: string;
  /** As typed: one network a line (commas and spaces separate too). */
  networks: string;
  redirects: boolean;
}

export interface RouteFormValues {
  ip: string;
  sha256: string;
}

/** What this mirror is, for the notes above the lists. */
export interface MirrorRole {
  /** This mirror's public address (null while unset). */
  publicUrl: string | null;
  /** MIRROR_SYNC_FROM: set on a replica, which never redirects. */
  syncFrom: string;
  /** MIRROR_SITE of a replica. */
  site: string;
  /** MIRROR_REDIRECTS=on. */
  redirects: boolean;
}

export interface ExplainState {
  values: RouteFormValues;
  errors: Record<string, string>;
  decision?: (RouteDecision & { packageStored: boolean; location: string | null }) | undefined;
}

/** A package of this mirror by its file name, for the replicas' lists and the route form. */
export interface PackageName {
  sha256: string;
  name: string;
}

export const SitesPage: FC<{
  role: MirrorRole;
  sites: SiteView[];
  replicas: ReplicaView[];
  packages: PackageName[];
  values: SiteFormValues;
  fieldErrors?: Record<string, string>;
  /** A refused weight, by replica id. */
  replicaErrors?: Record<number, string>;
  explain: ExplainState;
}> = ({ role, sites, replicas, packages, values, fieldErrors = {}, replicaErrors = {}, explain }) => {
  const names = new Map(packages.map((p) => [p.sha256, p.name]));
  const siteNames = new Set(sites.map((s) => s.name));
  return (
    <>
      <p class="muted">
        A site is an office and the networks its Macs download from. When a site has a replica (a goldmirror in that
        office that syncs from this one), this mirror sends each of the site’s Macs to it, as long as the replica is up
        and holds a verified copy of the package; every other Mac is served here, as before.
      </p>
      <RoleNotes role={role} />
      <JoinHelp role={role} open={replicas.length === 0} />

      <h2 id="sites-heading">Sites</h2>
      <DataTable
        rows={sites}
        id="sites"
        caption="Sites"
        empty={
          <p class="empty">
            No sites yet: every Mac downloads from this mirror. Create one below for each office that has a replica.
          </p>
        }
        columns={[
          {
            head: 'Name',
            cell: (s) => (
              <td>
                <a href={`/admin/sites/${encodeURIComponent(s.name)}`}>{s.name}</a>
              </td>
            ),
          },
          {
            head: 'Networks',
            cell: (s) => (
              <td class="mono">
                {/* Each block wraps as a whole. */}
                {s.networks.map((n, i) => (
                  <>
                    {i > 0 && ' '}
                    <span class="nowrap">
                      {n}
                      {i < s.networks.length - 1 && ','}
                    </span>
                  </>
                ))}
              </td>
            ),
          },
          {
            head: 'Redirects',
            cell: (s) => (
              <td>
                <RedirectsBadge on={s.redirects} />
              </td>
            ),
          },
          {
            head: 'Replicas',
            cell: (s) => {
              const own = replicas.filter((r) => r.site === s.name);
              return (
                <td>
                  {own.length === 0 ? (
                    <span class="muted">none</span>
                  ) : (
                    `${own.filter((r) => r.state === 'up').length} of ${own.length} up`
                  )}
                </td>
              );
            },
          },
        ]}
      />
      <h3>New site</h3>
      <SiteForm action="/admin/sites" values={values} fieldErrors={fieldErrors} submit="Create site" withName />

      <h2 id="replicas-heading">Replicas</h2>
      {replicas.length === 0 ? (
        <p class="empty">
          No replica has reported to this mirror yet. A replica appears here after its first sync (see above).
        </p>
      ) : (
        replicas.map((r) => (
          <ReplicaCard replica={r} names={names} siteDefined={siteNames.has(r.site)} error={replicaErrors[r.id]} />
        ))
      )}

      <RouteSection packages={packages} explain={explain} />
    </>
  );
};

const RoleNotes: FC<{ role: MirrorRole }> = ({ role }) => (
  <>
    {role.syncFrom !== '' && (
      <p class="card pending" id="role-replica">
        This mirror is a replica: it syncs from <span class="mono">{role.syncFrom}</span>
        {role.site ? (
          <>
            {' '}
            for site <strong>{role.site}</strong>
          </>
        ) : null}{' '}
        and never redirects a Mac. Sites and replicas are managed on the primary.
      </p>
    )}
    {!role.redirects && role.syncFrom === '' && (
      <p class="card pending" id="role-no-redirects">
        Redirects are switched off (<code>MIRROR_REDIRECTS=off</code>): this mirror serves every download itself,
        whatever the sites below say.
      </p>
    )}
  </>
);

/** How a replica joins, with this mirror's own address filled in where it is known. */
const JoinHelp: FC<{ role: MirrorRole; open: boolean }> = ({ role, open }) => (
  <details class="card help" id="join-help" open={open}>
    <summary>How a replica joins, and which link goes into the portal</summary>
    <ol>
      <li>Create a site below with the client networks of the office (for example 10.2.0.0/16).</li>
      <li>
        Create an <a href="/admin/tokens">API token</a> with scope <code>sync</code> for the replica.
      </li>
      <li>
        Start goldmirror in the office with:
        <pre class="env">
          {[
            `MIRROR_SYNC_FROM=${role.publicUrl ?? '<this mirror’s public address>'}`,
            'MIRROR_SYNC_TOKEN=<the sync token>',
            'MIRROR_SITE=<the site’s name>',
            'MIRROR_PUBLIC_URL=<the address the office’s Macs reach the replica by>',
          ].join('\n')}
        </pre>
        Its first sync copies and verifies the packages; then it reports itself here, under Replicas. This mirror checks
        it and sends it Macs once a check passed, and only for the packages it reports as verified.
      </li>
    </ol>
    <p>
      <strong>The portal link stays the same.</strong> The Download URL in the Parallels Management Portal remains this
      mirror’s link{role.publicUrl ? <> ({role.publicUrl}/d/…)</> : null}: every Mac asks here first and is sent on
      (HTTP 302) to the replica of its own site, or served here. The Downloads page shows where each Mac was sent.
    </p>
  </details>
);

const RedirectsBadge: FC<{ on: boolean }> = ({ on }) =>
  on ? <span class="badge ok">on</span> : <span class="badge neutral">off: served here</span>;

const STATE_BADGE: Record<ReplicaState, string> = {
  up: 'ok',
  pending: 'neutral',
  disabled: 'neutral',
  stale: 'bad',
  down: 'bad',
};

/** One replica: what it reported, what the checks found, and the admin's switches. */
const ReplicaCard: FC<{
  replica: ReplicaView;
  names: Map<string, string>;
  siteDefined: boolean;
  error: string | undefined;
}> = ({ replica: r, names, siteDefined, error }) => {
  const id = `replica-${r.id}`;
  const nameOf = (sha: string) => names.get(sha) ?? `${sha.slice(0, 12)}…`;
  return (
    <section class="card replica" id={id} aria-labelledby={`${id}-url`}>
      <h3 id={`${id}-url`} class="flush">
        <span class="mono">{r.publicUrl}</span> <span class={`badge ${STATE_BADGE[r.state]}`}>{r.state}</span>
      </h3>
      {r.reason && <p class={r.state === 'stale' || r.state === 'down' ? 'warn-text' : 'muted'}>{r.reason}</p>}
      <dl class="facts">
        <dt>Site</dt>
        <dd>
          {siteDefined ? (
            <a href={`/admin/sites/${encodeURIComponent(r.site)}`}>{r.site}</a>
          ) : (
            <>
              {r.site} <span class="badge bad">not defined here</span>{' '}
              <span class="muted">no Mac is sent to it until a site of that name exists</span>
            </>
          )}
        </dd>
        <dt>Version</dt>
        <dd>{r.version}</dd>
        <dt>Last heartbeat</dt>
        <dd>
          {formatDate(r.lastHeartbeatAt)}{' '}
          <span class="muted">(every {Math.round(r.heartbeatIntervalMs / 1000)} s)</span>
        </dd>
        <dt>Last sync</dt>
        <dd>{formatDate(r.lastSyncAt)}</dd>
        <dt>Last check</dt>
        <dd>
          {formatDate(r.lastCheckAt)}
          {r.lastCheck && <span class="muted">: {r.lastCheck}</span>}
        </dd>
        <dt>Packages</dt>
        <dd>
          {r.verified} verified by its own checks
          {r.lacks.length === 0 ? (
            <>; it holds every package of this mirror</>
          ) : (
            <PackageList
              id={`${id}-lacks`}
              label={`Lacks ${r.lacks.length} package${r.lacks.length === 1 ? '' : 's'} (those Macs are served here)`}
              digests={r.lacks}
              nameOf={nameOf}
            />
          )}
          {r.badCopies.length > 0 && (
            <PackageList
              id={`${id}-bad`}
              label={`${r.badCopies.length} cop${r.badCopies.length === 1 ? 'y differs' : 'ies differ'} from this mirror’s bytes`}
              digests={r.badCopies}
              nameOf={nameOf}
              bad
            />
          )}
        </dd>
      </dl>
      <form method="post" action={`/admin/replicas/${r.id}/weight`} class="inline-field" novalidate>
        <CsrfField />
        <label for={`${id}-weight`}>Weight</label>
        <input
          id={`${id}-weight`}
          name="weight"
          type="number"
          min={1}
          max={1000}
          value={String(r.weight)}
          {...describedBy(`${id}-weight`, error, `${id}-weight-hint`)}
        />
        <button type="submit" class="secondary">
          Save weight
        </button>
        <span class="muted" id={`${id}-weight-hint`}>
          1–1000: a site’s Macs are shared among its replicas in proportion.
        </span>
        <FieldError id={`${id}-weight`} message={error} />
      </form>
      <div class="actions">
        {r.enabled ? (
          <PostButton action={`/admin/replicas/${r.id}/disable`} label={`Disable ${r.publicUrl}`}>
            Disable
          </PostButton>
        ) : (
          <PostButton action={`/admin/replicas/${r.id}/enable`} label={`Enable ${r.publicUrl}`}>
            Enable
          </PostButton>
        )}
        {r.enabled && (
          <PostButton action={`/admin/replicas/${r.id}/check`} label={`Check ${r.publicUrl} now`}>
            Check now
          </PostButton>
        )}
        <a class="button danger" href={`/admin/replicas/${r.id}/forget`} aria-label={`Forget ${r.publicUrl}`}>
          Forget…
        </a>
      </div>
    </section>
  );
};

/** Packages by file name; a long list folds away. */
const PackageList: FC<{
  id: string;
  label: string;
  digests: string[];
  nameOf: (sha: string) => string;
  bad?: boolean;
}> = ({ id, label, digests, nameOf, bad }) => {
  const list = (
    <ul id={id}>
      {digests.map((sha) => (
        <li>
          <a href={`/admin/blobs/${sha}`}>{nameOf(sha)}</a>
        </li>
      ))}
    </ul>
  );
  const heading = <span class={bad ? 'warn-text' : undefined}>{label}</span>;
  return digests.length > 5 ? (
    <details>
      <summary>{heading}</summary>
      {list}
    </details>
  ) : (
    <div>
      {heading}:{list}
    </div>
  );
};

/** "Where does this Mac go": the decision the download path would take now, with each replica's reason. */
const RouteSection: FC<{ packages: PackageName[]; explain: ExplainState }> = ({ packages, explain }) => {
  const { values, errors, decision } = explain;
  return (
    <section aria-labelledby="route-heading">
      <h2 id="route-heading">Where does this Mac go?</h2>
      <form method="get" action="/admin/sites#route-heading" class="card stack" id="route-form" novalidate>
        <Field
          id="route-ip"
          label="The Mac’s address (as this mirror sees it)"
          class="mono"
          placeholder="10.2.3.4"
          maxlength={64}
          {...fieldState(values, errors, 'ip')}
        />
        <label for="route-sha256">Package</label>
        <select id="route-sha256" name="sha256" {...describedBy('route-sha256', errors.sha256)}>
          <option value="">— choose a package —</option>
          {packages.map((p) => (
            <option value={p.sha256} selected={p.sha256 === values.sha256}>
              {p.name} ({p.sha256.slice(0, 12)}…)
            </option>
          ))}
        </select>
        <FieldError id="route-sha256" message={errors.sha256} />
        <div class="actions">
          <button type="submit">Explain</button>
        </div>
      </form>
      {decision && <RouteAnswer decision={decision} packages={packages} sha256={values.sha256} />}
    </section>
  );
};

const EXCLUSIONS: Record<string, string> = {
  disabled: 'disabled',
  down: 'down',
  stale: 'stale',
  pending: 'not checked yet',
  'lacks-package': 'lacks the package',
  'bad-copy': 'bad copy',
  self: 'is this mirror',
  'other-site': 'other site',
};

const RouteAnswer: FC<{
  decision: RouteDecision & { packageStored: boolean; location: string | null };
  packages: PackageName[];
  sha256: string;
}> = ({ decision: d, packages, sha256 }) => {
  const name = packages.find((p) => p.sha256 === sha256)?.name ?? `${sha256.slice(0, 12)}…`;
  const where: Child = d.site ? (
    <>
      in site <strong>{d.site}</strong> (network <span class="mono">{d.network}</span>)
    </>
  ) : (
    'in no site'
  );
  return (
    <div class="card" id="route-answer" role="status">
      <p>
        A Mac at <span class="mono">{d.client}</span>, {where}, downloading <strong>{name}</strong>{' '}
        {d.replica ? (
          <>
            is sent to <span class="mono">{d.replica.publicUrl}</span>.
          </>
        ) : (
          <>is served by this mirror: {d.reason}.</>
        )}
      </p>
      {d.location && (
        <p>
          Its GET is answered <code>302</code> with <code>Location:</code>{' '}
          <span class="mono" id="route-location">
            {d.location}
          </span>
        </p>
      )}
      {d.candidates.length > 0 && (
        <DataTable
          rows={d.candidates}
          caption="The site's replicas and why each was passed over"
          columns={[
            { head: 'Replica', cell: (c) => <td class="mono">{c.publicUrl}</td> },
            { head: 'State', cell: (c) => <td>{c.state}</td> },
            { head: 'Weight', cell: (c) => <td>{c.weight}</td> },
            {
              head: 'Verdict',
              cell: (c) => (
                <td>
                  {c.excluded === null ? (
                    d.replica?.id === c.id ? (
                      <span class="badge ok">chosen</span>
                    ) : (
                      <span class="badge neutral">eligible</span>
                    )
                  ) : (
                    <>
                      <span class="badge bad">{EXCLUSIONS[c.excluded] ?? c.excluded}</span>
                      {c.detail && <div class="muted">{c.detail}</div>}
                    </>
                  )}
                </td>
              ),
            },
          ]}
        />
      )}
    </div>
  );
};

/** A site's own page: its networks and redirect switch, and the way to delete it. */
export const SiteEditPage: FC<{
  site: SiteView;
  replicas: ReplicaView[];
  values: SiteFormValues;
  fieldErrors?: Record<string, string>;
}> = ({ site, replicas, values, fieldErrors = {} }) => (
  <>
    <p class="muted">
      {replicas.length === 0
        ? 'No replica reports this site yet.'
        : `Replicas of this site: ${replicas.map((r) => `${r.publicUrl} (${r.state})`).join(', ')}.`}
    </p>
    <SiteForm
      action={`/admin/sites/${encodeURIComponent(site.name)}`}
      values={values}
      fieldErrors={fieldErrors}
      submit="Save changes"
    />
    <div class="actions">
      <a class="button danger" href={`/admin/sites/${encodeURIComponent(site.name)}/delete`}>
        Delete site…
      </a>
    </div>
  </>
);

export const SiteDeletePage: FC<{ site: SiteView; replicas: ReplicaView[] }> = ({ site, replicas }) => (
  <div class="card">
    <p>
      Macs in {site.networks.join(', ')} will be served by this mirror, like every Mac outside a site. The download log
      keeps the site’s name on past downloads.
    </p>
    {replicas.length > 0 && (
      <p>
        Its replicas ({replicas.map((r) => r.publicUrl).join(', ')}) stay listed but get no Mac until a site named{' '}
        {site.name} exists again.
      </p>
    )}
    <ConfirmForm
      action={`/admin/sites/${encodeURIComponent(site.name)}/delete`}
      hidden={{ confirm: 'yes' }}
      cancel={`/admin/sites/${encodeURIComponent(site.name)}`}
    >
      Delete site {site.name}
    </ConfirmForm>
  </div>
);

export const ReplicaForgetPage: FC<{ replica: ReplicaView }> = ({ replica }) => (
  <div class="card">
    <p>
      This mirror forgets <span class="mono">{replica.publicUrl}</span> (site {replica.site}) and what it reported. A
      replica that is still running reappears with its next heartbeat: stop it first, or revoke its sync token, to
      retire it for good. To only stop sending it Macs, disable it instead.
    </p>
    <ConfirmForm action={`/admin/replicas/${replica.id}/forget`} hidden={{ confirm: 'yes' }} cancel="/admin/sites">
      Forget {replica.publicUrl}
    </ConfirmForm>
  </div>
);

const SiteForm: FC<{
  action: string;
  values: SiteFormValues;
  fieldErrors: Record<string, string>;
  submit: string;
  withName?: boolean;
}> = ({ action, values, fieldErrors, submit, withName }) => {
  const prefix = withName ? 'site' : 'site-edit';
  return (
    <form method="post" action={action} class="card stack" novalidate>
      <CsrfField />
      {withName && (
        <Field
          id="site-name"
          label="Name"
          required
          maxlength={64}
          class="mono"
          hint="site-name-hint"
          {...fieldState(values, fieldErrors, 'name')}
        />
      )}
      {withName && (
        <p class="muted" id="site-name-hint">
          Lower-case letters, digits, “.”, “_” or “-”: the replicas of this office name it in <code>MIRROR_SITE</code>.
        </p>
      )}
      <label for={`${prefix}-networks`}>Client networks</label>
      <textarea
        id={`${prefix}-networks`}
        name="networks"
        rows={4}
        class="mono"
        {...describedBy(`${prefix}-networks`, fieldErrors.networks, `${prefix}-networks-hint`)}
      >
        {values.networks}
      </textarea>
      <p class="muted" id={`${prefix}-networks-hint`}>
        One CIDR block a line (IPv4 or IPv6, e.g. <code>10.2.0.0/16</code>; a bare address is one host). Each network
        belongs to one site; a Mac in several goes to the most specific.
      </p>
      <FieldError id={`${prefix}-networks`} message={fieldErrors.networks} />
      <label class="check" for={`${prefix}-redirects`}>
        <input id={`${prefix}-redirects`} name="redirects" type="checkbox" value="on" checked={values.redirects} /> Send
        this site’s Macs to its replicas (off: this mirror serves them)
      </label>
      <FieldError id={`${prefix}-redirects`} message={fieldErrors.redirects} />
      <div class="actions">
        <button type="submit">{submit}</button>
      </div>
    </form>
  );
};
