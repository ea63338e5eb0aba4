/** History: the audit log in sentences, newest first, with filters; sign-ins only when asked for. */
import type { FC } from 'hono/jsx';
import {
  ACTION_KINDS,
  actorName,
  type HistoryEntry,
  type HistoryQuery,
  type SentencePart,
} from '../../server/services/history.js';
import { type Choice, FilterSelect } from '../components.js';
import { formatDate } from '../layout.js';

/** One sentence with its links. */
export const Sentence: FC<{ parts: SentencePart[] }> = ({ parts }) => (
  <>{parts.map((p) => (p.href ? <a href={p.href}>{p.text}</a> : p.text))}</>
);

/** Entries as a list of dated sentences (the history page and the dashboard). */
export const HistoryList: FC<{ entries: HistoryEntry[] }> = ({ entries }) => (
  <ol class="history">
    {entries.map((e) => (
      <li>
        <time datetime={e.at}>{formatDate(e.at)}</time> <Sentence parts={e.parts} />
      </li>
    ))}
  </ol>
);

export function historyQueryString(q: HistoryQuery, extra: Record<string, string> = {}): string {
  const params = new URLSearchParams();
  if (q.actor) params.set('actor', q.actor);
  if (q.action) params.set('action', q.action);
  if (q.text) params.set('q', q.text);
  if (q.signIns) params.set('logins', '1');
  for (const [k, v] of Object.entries(extra)) params.set(k, v);
  const text = params.toString();
  return text ? `?${text}` : '';
}

export const HistoryPage: FC<{
  query: HistoryQuery;
  entries: HistoryEntry[];
  nextBefore: number | null;
  actors: string[];
}> = ({ query, entries, nextBefore, actors }) => {
  const filtered = !!(query.actor || query.action || query.text);
  const who = actors.map((a): Choice => [a, actorName(a)]);
  const what = Object.entries(ACTION_KINDS).map(([key, kind]): Choice => [key, kind.label]);
  return (
    <>
      <p class="muted">Every change to this mirror, who made it and when (times in UTC), newest first.</p>
      <form method="get" action="/admin/history" class="card filters" role="search" aria-label="Filter the history">
        <FilterSelect id="h-actor" name="actor" label="Who" any="anyone" choices={who} selected={query.actor} />
        <FilterSelect
          id="h-action"
          name="action"
          label="What"
          any="any change"
          choices={what}
          selected={query.action}
        />
        <div>
          <label for="h-text">Text</label>
          <input id="h-text" name="q" type="search" value={query.text ?? ''} maxlength={200} placeholder="e.g. Sales" />
        </div>
        <div>
          <label class="check" for="h-logins">
            <input id="h-logins" name="logins" type="checkbox" value="1" checked={query.signIns === true} /> Show
            sign-ins
          </label>
        </div>
        <div class="actions">
          <button type="submit">Filter</button>
          {(filtered || query.signIns) && <a href="/admin/history">Clear filters</a>}
        </div>
      </form>
      {entries.length === 0 ? (
        <p class="empty">{filtered ? 'Nothing in the history matches these filters.' : 'Nothing has changed yet.'}</p>
      ) : (
        <HistoryList entries={entries} />
      )}
      {nextBefore !== null && (
        <p>
          <a href={`/admin/history${historyQueryString(query, { before: String(nextBefore) })}`}>Older entries →</a>
        </p>
      )}
    </>
  );
};
