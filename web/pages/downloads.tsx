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
import { formatBytes } from '../layout.js';

export interface DownloadChoices {
  images: Array<{ id: number; name: string }>;
  clients: string[];
}

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
        <div>
          <label for="f-image">Golden image</label>
          <select id="f-image" name="image">
            <option value="">any</option>
            {choices.images.map((i) => (
              <option value={String(i.id)} selected={filter.image === i.id}>
                {i.name}
              </option>
            ))}
          </select>
        </div>
        <div>
          <label for="f-arch">Architecture</label>
          <select id="f-arch" name="arch">
            <option value="">any</option>
            {ARCHES.map((a) => (
              <option value={a} selected={filter.arch === a}>
                {ARCH_LABELS[a]}
              </option>
            ))}
          </select>
        </div>
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
        <div>
          <label for="f-result">Result</label>
          <select id="f-result" name="result">
            <option value="">any</option>
            {DOWNLOAD_RESULTS.map((r) => (
              <option value={r} selected={filter.result === r}>
                {RESULT_LABELS[r]}
              </option>
            ))}
          </select>
        </div>
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

export const InProgressTable: FC<{ rows: DownloadInProgress[] }> = ({ rows }) =>
  rows.length === 0 ? (
    <p class="empty">No download is running right now.</p>
  ) : (
    <div class="table-wrap">
      <table>
        <caption class="visually-hidden">Downloads in progress</caption>
        <thead>
          <tr>
            <th scope="col">Since</th>
            <th scope="col">Client</th>
            <th scope="col">Golden image</th>
            <th scope="col">Progress</th>
            <th scope="col">Rate</th>
            <th scope="col" class="hide-narrow">
              User agent
            </th>
          </tr>
        </thead>
        <tbody>
          {rows.map((d) => (
            <tr>
              <td>
                {formatTime(d.startedAt)}
                <div class="muted">{formatDuration(d.elapsedMs)}</div>
              </td>
              <td class="mono nowrap">{d.client}</td>
              <td>
                <ImageCell image={d.image} archLabel={d.archLabel} sha256={d.sha256} />
              </td>
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
              <td class="nowrap">{formatBytes(d.bytesPerSec)}/s</td>
              <td class="hide-narrow ua" title={d.userAgent}>
                {d.userAgent || '–'}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );

export const FinishedTable: FC<{ rows: DownloadEntry[]; filtered: boolean }> = ({ rows, filtered }) =>
  rows.length === 0 ? (
    <p class="empty">
      {filtered
        ? 'No download matches these filters.'
        : 'No downloads yet. Macs show up here once they fetch a package link.'}
    </p>
  ) : (
    <div class="table-wrap">
      <table>
        <caption class="visually-hidden">Downloads, newest first</caption>
        <thead>
          <tr>
            <th scope="col">Time</th>
            <th scope="col">Client</th>
            <th scope="col">Golden image</th>
            <th scope="col">Bytes</th>
            <th scope="col">Result</th>
            <th scope="col">Duration</th>
            <th scope="col">Rate</th>
            <th scope="col" class="hide-narrow">
              User agent
            </th>
          </tr>
        </thead>
        <tbody>
          {rows.map((d) => (
            <tr>
              <td>{formatTime(d.startedAt)}</td>
              <td class="mono nowrap">
                <a
                  href={`/admin/downloads?client=${encodeURIComponent(d.client)}`}
                  title={`Only downloads to ${d.client}`}
                >
                  {d.client}
                </a>
              </td>
              <td>
                <ImageCell image={d.image} archLabel={d.archLabel} sha256={d.sha256} />
              </td>
              <td>
                <span class="nowrap">{formatBytes(d.bytesSent)}</span>
                {(d.firstByte !== 0 || d.bytesPlanned !== d.size) && (
                  <div class="muted">
                    {d.firstByte === null ? 'several ranges' : `from byte ${d.firstByte.toLocaleString('en-US')}`} of{' '}
                    {formatBytes(d.size)}
                  </div>
                )}
              </td>
              <td>
                <span class={`badge ${d.result === 'complete' ? 'ok' : d.result === 'aborted' ? 'bad' : 'neutral'}`}>
                  {RESULT_LABELS[d.result]}
                </span>
              </td>
              <td class="nowrap">{formatDuration(d.durationMs)}</td>
              <td class="nowrap">{formatBytes(d.bytesPerSec)}/s</td>
              <td class="hide-narrow ua" title={d.userAgent}>
                {d.userAgent || '–'}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
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
