/**
 * The Downloads page: who downloaded what. Its two tables are also served
 * alone as fragments, which web/assets/live.js fetches every few seconds
 * (no client framework; without JavaScript the Refresh link does the same).
 */
import type { FC } from 'hono/jsx';
import type {
  DownloadEntry,
  DownloadFilter,
  DownloadInProgress,
  DownloadLogPage,
} from '../../server/services/download-log.js';
import { DOWNLOAD_RESULTS, RESULT_LABELS } from '../../server/services/download-log.js';
import { LOG_ROWS_PER_SEC } from '../../server/services/activity.js';
import { ARCH_LABELS, ARCHES } from '../../server/services/images.js';
import { type Choice, type Column, DataTable, FilterSelect } from '../components.js';
import { formatBytes } from '../layout.js';

export interface DownloadChoices {
  images: Array<{ id: number; name: string }>;
  clients: string[];
}

/** The status of a GET handed to the object storage or a replica: no bytes went through this mirror. */
const REDIRECTED = 302;

/** The query string of a filter (page links and live fragments keep it). */
export function filterQuery(filter: DownloadFilter, extra: Record<string, string> = {}): string {
  const params = new URLSearchParams();
  if (filter.image !== undefined) params.set('image', String(filter.image));
  if (filter.arch) params.set('arch', filter.arch);
  if (filter.client) params.set('client', filter.client);
  if (filter.result) params.set('result', filter.result);
  for (const [k, v] of Object.entries(extra)) params.set(k, v);
  const text = params.toString();
  return text ? `?${text}` : '';
}

export const DownloadsPage: FC<{
  filter: DownloadFilter;
  page: DownloadLogPage;
  choices: DownloadChoices;
  retention: string;
}> = ({ filter, page, choices, retention }) => {
  const filtered =
    filter.image !== undefined || filter.arch !== undefined || !!filter.client || filter.result !== undefined;
  const images = choices.images.map((i): Choice => [String(i.id), i.name]);
  const arches = ARCHES.map((a): Choice => [a, ARCH_LABELS[a]]);
  const results = DOWNLOAD_RESULTS.map((r): Choice => [r, RESULT_LABELS[r]]);
  return (
    <>
      <p class="muted">
        Every download body this mirror served: a whole package, a resumed piece (a Range request) or one that was cut
        short. Kept for {retention}. goldmirror’s own link checks are not listed.
      </p>
      {page.notLogged > 0 && (
        <p class="flash bad" role="status">
          {page.notLogged.toLocaleString('en-US')} download bodies since the server started were not logged: more than{' '}
          {LOG_ROWS_PER_SEC} a second arrived (many tiny Range requests), or the database could not keep up.
        </p>
      )}
      <form method="get" action="/admin/downloads" class="card filters" role="search" aria-label="Filter downloads">
        <FilterSelect
          id="f-image"
          name="image"
          label="Golden image"
          choices={images}
          selected={filter.image?.toString()}
        />
        <FilterSelect id="f-arch" name="arch" label="Architecture" choices={arches} selected={filter.arch} />
        <div>
          <label for="f-client">Client address</label>
          <input
            id="f-client"
            name="client"
            type="text"
            list="f-clients"
            value={filter.client ?? ''}
            maxlength={64}
            class="mono"
          />
          <datalist id="f-clients">
            {choices.clients.map((cl) => (
              <option value={cl}></option>
            ))}
          </datalist>
        </div>
        <FilterSelect id="f-result" name="result" label="Result" choices={results} selected={filter.result} />
        <div class="actions">
          <button type="submit">Filter</button>
          {filtered && <a href="/admin/downloads">Clear filters</a>}
        </div>
      </form>

      <h2>
        In progress{' '}
        <span class="muted live-note">
          (updates by itself; <a href={`/admin/downloads${filterQuery(filter)}`}>refresh</a>)
        </span>
      </h2>
      <div id="in-progress" data-live={`/admin/downloads/live${filterQuery(filter, { part: 'active' })}`}>
        <InProgressTable rows={page.inProgress} />
      </div>

      <h2>Finished and cut short</h2>
      <div
        id="finished"
        data-live={
          filter.before === undefined ? `/admin/downloads/live${filterQuery(filter, { part: 'finished' })}` : undefined
        }
      >
        <FinishedTable rows={page.downloads} filtered={filtered} />
      </div>
      {page.nextBefore !== null && (
        <p>
          <a href={`/admin/downloads${filterQuery(filter, { before: String(page.nextBefore) })}`}>Older downloads →</a>
        </p>
      )}
    </>
  );
};

/** The columns both tables share after their first ones. */
type DownloadRow = DownloadInProgress | DownloadEntry;
const imageColumn: Column<DownloadRow> = {
  head: 'Golden image',
  cell: (d) => (
    <td>
      <ImageCell image={d.image} archLabel={d.archLabel} sha256={d.sha256} />
    </td>
  ),
};
const rateColumn: Column<DownloadRow> = {
  head: 'Rate',
  cell: (d) => (
    <td class="nowrap">{'status' in d && d.status === REDIRECTED ? '–' : `${formatBytes(d.bytesPerSec)}/s`}</td>
  ),
};
const userAgentColumn: Column<DownloadRow> = {
  head: 'User agent',
  narrow: true,
  cell: (d) => (
    <td class="hide-narrow ua" title={d.userAgent}>
      {d.userAgent || '–'}
    </td>
  ),
};

export const InProgressTable: FC<{ rows: DownloadInProgress[] }> = ({ rows }) => (
  <DataTable
    rows={rows}
    empty={<p class="empty">No download is running right now.</p>}
    caption="Downloads in progress"
    columns={[
      {
        head: 'Since',
        cell: (d) => (
          <td>
            {formatTime(d.startedAt)}
            <div class="muted">{formatDuration(d.elapsedMs)}</div>
          </td>
        ),
      },
      { head: 'Client', cell: (d) => <td class="mono nowrap">{d.client}</td> },
      imageColumn,
      {
        head: 'Progress',
        cell: (d) => (
          <td>
            <progress
              max={d.bytesPlanned}
              value={d.bytesSent}
              aria-label={`Progress of the download to ${d.client}`}
            ></progress>
            <div class="muted">
              {formatBytes(d.bytesSent)} of {formatBytes(d.bytesPlanned)}
              {d.firstByte !== null && d.firstByte > 0 ? `, from byte ${d.firstByte.toLocaleString('en-US')}` : ''}
            </div>
          </td>
        ),
      },
      rateColumn,
      userAgentColumn,
    ]}
  />
);

export const FinishedTable: FC<{ rows: DownloadEntry[]; filtered: boolean }> = ({ rows, filtered }) => (
  <DataTable
    rows={rows}
    empty={
      <p class="empty">
        {filtered
          ? 'No download matches these filters.'
          : 'No downloads yet. Macs show up here once they fetch a package link.'}
      </p>
    }
    caption="Downloads, newest first"
    columns={[
      { head: 'Time', cell: (d) => <td>{formatTime(d.startedAt)}</td> },
      {
        head: 'Client',
        cell: (d) => (
          <td class="mono nowrap">
            <a href={`/admin/downloads?client=${encodeURIComponent(d.client)}`} title={`Only downloads to ${d.client}`}>
              {d.client}
            </a>
          </td>
        ),
      },
      {
        head: 'Site and server',
        cell: (d) => (
          <td>
            {d.site ?? <span class="muted">no site</span>}
            <div class={d.servedBy ? 'mono' : 'muted'}>{d.servedBy ?? 'this mirror'}</div>
          </td>
        ),
      },
      imageColumn,
      {
        head: 'Bytes',
        cell: (d) => (
          <td>
            <span class="nowrap">{formatBytes(d.status === REDIRECTED ? d.bytesPlanned : d.bytesSent)}</span>
            {d.status === REDIRECTED && (
              <div class="muted">{d.servedBy ? 'sent by the replica' : 'asked of the object storage'}</div>
            )}
            {(d.firstByte !== 0 || d.bytesPlanned !== d.size) && (
              <div class="muted">
                {d.firstByte === null ? 'several ranges' : `from byte ${d.firstByte.toLocaleString('en-US')}`} of{' '}
                {formatBytes(d.size)}
              </div>
            )}
          </td>
        ),
      },
      {
        head: 'Result',
        cell: (d) => (
          <td>
            {d.status === REDIRECTED ? (
              <span class="badge neutral">redirected</span>
            ) : (
              <span class={`badge ${d.result === 'complete' ? 'ok' : d.result === 'aborted' ? 'bad' : 'neutral'}`}>
                {RESULT_LABELS[d.result]}
              </span>
            )}
          </td>
        ),
      },
      { head: 'Duration', cell: (d) => <td class="nowrap">{formatDuration(d.durationMs)}</td> },
      rateColumn,
      userAgentColumn,
    ]}
  />
);

const ImageCell: FC<{
  image: { id: number | null; name: string } | null;
  archLabel: string | null;
  sha256: string;
}> = ({ image, archLabel, sha256 }) => (
  <>
    {image ? (
      image.id !== null ? (
        <a href={`/admin/images/${image.id}`}>{image.name}</a>
      ) : (
        image.name
      )
    ) : (
      <a href={`/admin/blobs/${sha256}`}>package {sha256.slice(0, 12)}…</a>
    )}
    {archLabel && <div class="muted">{archLabel}</div>}
  </>
);

/** To the second, in UTC like the rest of the console. */
export function formatTime(iso: string): string {
  return `${iso.slice(0, 19).replace('T', ' ')} UTC`;
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}
