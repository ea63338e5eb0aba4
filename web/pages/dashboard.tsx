import type { Child, FC } from 'hono/jsx';
import type { CheckerStatus } from '../../server/jobs/integrity-checker.js';
import type { HistoryEntry } from '../../server/services/history.js';
import type { IntegritySummary } from '../../server/services/integrity.js';
import type { LeaderView } from '../../server/services/leadership.js';
import type { PortalChange } from '../../server/services/portal-changes.js';
import { DataTable, PostButton } from '../components.js';
import { formatBytes, formatDate } from '../layout.js';
import { PortalChangeBox } from './portal-change.js';
import type { DownloadCharts, DownloadOrigins } from '../../server/services/download-log.js';
import { DownloadChartsSection } from './charts.js';
import { HistoryList } from './history.js';

/** The bucket the blobs are in (MIRROR_STORAGE=s3): its blobs, or why they could not be counted. */
export type BucketUsage = { location: string } & ({ objects: number; bytes: number } | { error: string });

export interface DashboardData {
  /** The local data directory's filesystem (on fs it holds the blobs too). */
  disk: { freeBytes: number; totalBytes: number; blobBytes: number };
  /** Shown instead of the disk when the blobs are in a bucket. */
  bucket?: BucketUsage | undefined;
  blobCount: number;
  imageCount: number;
  groupCount: number;
  integrity: IntegritySummary;
  checks: CheckerStatus;
  recentDownloads: Array<{
    sha256: string;
    name: string;
    downloads: number;
    lastDownloadAt: string | null;
    images: string[];
  }>;
  /** Newest changes as sentences (sign-ins left out). */
  recentChanges: HistoryEntry[];
  /** Bytes per hour and downloads per day, last week (absent: no chart). */
  charts?: DownloadCharts;
  /** Downloads per site and per serving mirror, last week (null: no site or replica exists, no panel). */
  origins?: DownloadOrigins | null;
  /** Images whose portal values changed and still wait for the admin to update the portal. */
  pendingPortal: Array<{ id: number; name: string; change: PortalChange }>;
  /** The process that runs the scheduled jobs (null: none has taken the lease yet). */
  leader: LeaderView | null;
  /** Parallels Desktop versions whose upstream bytes changed after this mirror stored them. */
  updateAlerts?: Array<{ version: string; message: string }>;
}

export const DashboardPage: FC<{ data: DashboardData }> = ({ data }) => (
  <>
    {data.integrity.problems.length > 0 && (
      <section class="alert" role="alert" aria-labelledby="integrity-alert">
        <h2 id="integrity-alert" class="flush">
          {data.integrity.problems.length} package(s) failed their integrity check and are withheld from Macs
        </h2>
        <ul>
          {data.integrity.problems.map((p) => (
            <li>
              <span class="mono">{p.sha256.slice(0, 16)}…</span> is {p.state}
              {p.detail ? ` (${p.detail})` : ''}.{' '}
              {p.images.length > 0
                ? `Affects ${p.images.map((i) => `${i.name} (${i.arch === 'arm64' ? 'Apple silicon' : 'Intel'})`).join(', ')}`
                : 'No golden image uses it'}
              {p.groups.length > 0 ? ` and groups ${p.groups.join(', ')}` : ''}. Re-import the package to repair it.
            </li>
          ))}
        </ul>
      </section>
    )}
    {data.updateAlerts && data.updateAlerts.length > 0 && (
      <section class="alert" role="alert" aria-labelledby="updates-alert" id="updates-alert-section">
        <h2 id="updates-alert" class="flush">
          The bytes behind a known Parallels Desktop update URL changed ({data.updateAlerts.length} version
          {data.updateAlerts.length === 1 ? '' : 's'})
        </h2>
        <ul>
          {data.updateAlerts.map((a) => (
            <li>
              <strong>{a.version}</strong>: {a.message}.
            </li>
          ))}
        </ul>
        <p>
          <a href="/admin/updates">Parallels Desktop updates →</a>
        </p>
      </section>
    )}
    {data.pendingPortal.length > 0 && (
      <section aria-labelledby="pending-portal">
        <h2 id="pending-portal">{data.pendingPortal.length} golden image(s) need a portal update</h2>
        {data.pendingPortal.map((p) => (
          <PortalChangeBox image={p} change={p.change} back="/admin" heading="h3" />
        ))}
      </section>
    )}
    <div class="grid">
      {data.bucket ? (
        <BucketCard bucket={data.bucket} disk={data.disk} />
      ) : (
        <StatCard label="Disk free" value={formatBytes(data.disk.freeBytes)}>
          of {formatBytes(data.disk.totalBytes)}; packages use {formatBytes(data.disk.blobBytes)}
        </StatCard>
      )}
      <StatCard label="Packages" value={data.blobCount}>
        {data.integrity.blobs.ok} verified, {data.integrity.blobs.corrupt} corrupt, {data.integrity.blobs.missing}{' '}
        missing
      </StatCard>
      <StatCard label="Golden images" value={data.imageCount}>
        {data.groupCount} groups
      </StatCard>
    </div>

    {data.charts && <DownloadChartsSection charts={data.charts} />}

    {data.origins && <OriginsSection origins={data.origins} />}

    <h2>Integrity checks</h2>
    <div class="card">
      {data.checks.running.length === 0 && data.checks.queued.length === 0 ? (
        <p>No check is running. Every package is re-hashed on a schedule.</p>
      ) : (
        <ul>
          {data.checks.running.map((r) => (
            <li>
              <span class="mono">{r.sha256.slice(0, 16)}…</span>{' '}
              <progress max={r.totalBytes} value={r.bytesDone} aria-label="Check progress"></progress>{' '}
              {formatBytes(r.bytesDone)} of {formatBytes(r.totalBytes)} at {formatBytes(r.bytesPerSec)}/s
            </li>
          ))}
          {data.checks.queued.length > 0 && <li>{data.checks.queued.length} waiting</li>}
        </ul>
      )}
      <div class="actions">
        <PostButton action="/admin/verify">Verify all packages now</PostButton>
        {data.checks.running.length + data.checks.queued.length > 0 && (
          <PostButton action="/admin/verify/cancel">Cancel checks</PostButton>
        )}
      </div>
    </div>

    <h2>Scheduled jobs</h2>
    <div class="card" id="leader">
      <LeaderLine leader={data.leader} />
    </div>

    <h2>Recent downloads</h2>
    <DataTable
      rows={data.recentDownloads}
      empty={<p class="muted">No finished downloads yet.</p>}
      columns={[
        { head: 'Package', cell: (d) => <td>{d.name}</td> },
        { head: 'Golden image', cell: (d) => <td>{d.images.join(', ') || '–'}</td> },
        { head: 'Downloads', cell: (d) => <td>{d.downloads}</td> },
        { head: 'Last', cell: (d) => <td>{formatDate(d.lastDownloadAt)}</td> },
      ]}
    />

    <h2>Recent changes</h2>
    {data.recentChanges.length === 0 ? (
      <p class="muted">Nothing changed yet.</p>
    ) : (
      <HistoryList entries={data.recentChanges} />
    )}
    <p>
      <a href="/admin/history">Full history →</a>
    </p>
  </>
);

/** Where the last week's downloads came from: per client site, and per mirror that delivered the bytes. */
const OriginsSection: FC<{ origins: DownloadOrigins }> = ({ origins }) => {
  const figures = <T extends { downloads: number; bytes: number }>() => [
    { head: 'Downloads', cell: (r: T) => <td>{r.downloads.toLocaleString('en-US')}</td> },
    { head: 'Bytes', cell: (r: T) => <td class="nowrap">{formatBytes(r.bytes)}</td> },
  ];
  type SiteRow = DownloadOrigins['bySite'][number];
  type ServerRow = DownloadOrigins['byServer'][number];
  return (
    <section aria-labelledby="origins-heading" id="origins">
      <h2 id="origins-heading">Where downloads come from</h2>
      <p class="muted">
        Finished downloads and the bytes Macs received in the last {origins.days} days, by the Mac’s site and by the
        mirror that sent the bytes (a Mac sent to a replica got them from the replica).{' '}
        <a href="/admin/sites">Sites and replicas</a>
      </p>
      <div class="chart-grid-2">
        <DataTable
          rows={origins.bySite}
          id="origins-sites"
          caption="Downloads by site"
          columns={[
            {
              head: 'Site',
              cell: (r: SiteRow) => (
                <td>
                  {r.site === null ? (
                    <span class="muted">outside every site</span>
                  ) : (
                    <>
                      {r.site}
                      {!r.defined && <span class="muted"> (deleted)</span>}
                    </>
                  )}
                </td>
              ),
            },
            ...figures<SiteRow>(),
          ]}
        />
        <DataTable
          rows={origins.byServer}
          id="origins-servers"
          caption="Downloads by serving mirror"
          columns={[
            {
              head: 'Served by',
              cell: (r: ServerRow) => (
                <td>
                  {r.replica === null ? (
                    'this mirror'
                  ) : (
                    <>
                      <span class="mono">{r.replica}</span>
                      <div class="muted">
                        {r.site !== null ? `replica of ${r.site}` : 'replica'}
                        {!r.known && ' (forgotten)'}
                      </div>
                    </>
                  )}
                </td>
              ),
            },
            ...figures<ServerRow>(),
          ]}
        />
      </div>
    </section>
  );
};

/** Which process runs the scheduled checks, GC, sync and clean-ups: the one holding the jobs lease. */
const LeaderLine: FC<{ leader: LeaderView | null }> = ({ leader }) => {
  if (!leader) return <p>No process has taken the lead yet: scheduled checks, GC and sync wait for one.</p>;
  const who = (
    <>
      <span class="mono">{leader.host}</span> process {leader.pid}
      {leader.worker !== null && <> (worker {leader.worker})</>}
      {leader.listen && (
        <>
          , listening on <span class="mono">{leader.listen}</span>
        </>
      )}
      {leader.thisProcess && <> — the process showing this page</>}
    </>
  );
  return leader.live ? (
    <p>
      Scheduled checks, GC, sync and clean-ups run on {who}, leading since {formatDate(leader.since)}; it renews its
      lease while it runs (now until {clockTime(leader.expiresAt)}).
      {!leader.thisProcess && ' The checks listed above are those of the process showing this page.'}
    </p>
  ) : (
    <p class="warn-text">
      The last leader, {who}, stopped renewing its lease, which ran out at {clockTime(leader.expiresAt)}: another
      process takes over at its next attempt.
    </p>
  );
};

/** A lease time to the second (leases last seconds, not days). */
function clockTime(iso: string): string {
  return `${iso.slice(11, 19)} UTC`;
}

/** One figure of the dashboard, with what it means underneath. */
/** The bucket's blobs, where it is, and the local space temp files and uploads need. */
const BucketCard: FC<{ bucket: BucketUsage; disk: DashboardData['disk'] }> = ({ bucket, disk }) => (
  <StatCard label="Bucket" value={'error' in bucket ? 'unavailable' : formatBytes(bucket.bytes)}>
    {'error' in bucket ? bucket.error : `${bucket.objects} object(s) in ${bucket.location}`}; data dir{' '}
    {formatBytes(disk.freeBytes)} free
  </StatCard>
);

const StatCard: FC<{ label: string; value: Child; children: Child }> = ({ label, value, children }) => (
  <div class="card">
    <div class="muted">{label}</div>
    <div class="stat">{value}</div>
    <div class="muted">{children}</div>
  </div>
);
