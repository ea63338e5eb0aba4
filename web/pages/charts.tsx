/**
 * Small bar charts drawn on the server as inline SVG: no script, no CDN, no
 * framework. Each chart is an image with a title and a description that
 * states the figures, each bar carries its own title (shown on hover, read by
 * screen readers), and the numbers are also in a table behind "Show the numbers".
 * Colours come from the stylesheet (classes), so dark mode applies.
 */
import type { FC } from 'hono/jsx';
import type { DownloadCharts } from '../../server/services/download-log.js';
import { formatBytes } from '../layout.js';

export interface Bar {
  /** What the bar stands for, in words ("2026-11-24 14:00 UTC"). */
  label: string;
  value: number;
  /** The value in words ("1.2 GB"). */
  valueText: string;
  /** Label under the axis at this bar, if any. */
  tick?: string;
}

const WIDTH = 480;
const HEIGHT = 190;
const PAD = { left: 62, right: 10, top: 12, bottom: 28 };

export const BarChart: FC<{
  id: string;
  title: string;
  description: string;
  bars: Bar[];
  formatAxis: (n: number) => string;
}> = ({ id, title, description, bars, formatAxis }) => {
  const max = niceCeiling(Math.max(0, ...bars.map((b) => b.value)));
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const step = plotW / Math.max(1, bars.length);
  const gap = step > 6 ? Math.min(6, step * 0.2) : step > 2 ? 0.5 : 0;
  const y = (v: number) => PAD.top + plotH - (max > 0 ? (v / max) * plotH : 0);
  const labels = tickLabels(bars, step);
  return (
    <svg
      class="chart"
      viewBox={`0 0 ${WIDTH} ${HEIGHT}`}
      role="img"
      aria-labelledby={`${id}-title ${id}-desc`}
      id={id}
      preserveAspectRatio="xMidYMid meet"
    >
      <title id={`${id}-title`}>{title}</title>
      <desc id={`${id}-desc`}>{description}</desc>
      {(max > 0 ? [0, 0.5, 1] : [0]).map((f) => (
        <g class="chart-rule">
          <line x1={PAD.left} x2={WIDTH - PAD.right} y1={y(max * f)} y2={y(max * f)} />
          <text class="chart-label" x={PAD.left - 6} y={y(max * f) + 4} text-anchor="end">
            {formatAxis(max * f)}
          </text>
        </g>
      ))}
      {bars.map((b, i) => {
        const x = PAD.left + i * step;
        const top = y(b.value);
        return (
          <g>
            {b.value > 0 && (
              <rect
                class="chart-bar"
                x={fixed(x + gap / 2)}
                y={fixed(top)}
                width={fixed(Math.max(0.5, step - gap))}
                height={fixed(PAD.top + plotH - top)}
              >
                <title>{`${b.label}: ${b.valueText}`}</title>
              </rect>
            )}
            {b.tick !== undefined && (
              <>
                <line class="chart-axis" x1={fixed(x)} x2={fixed(x)} y1={PAD.top + plotH} y2={PAD.top + plotH + 4} />
                {labels.has(i) && (
                  <text class="chart-label" x={fixed(labels.get(i)!)} y={HEIGHT - 8} text-anchor="middle">
                    {b.tick}
                  </text>
                )}
              </>
            )}
          </g>
        );
      })}
      <line class="chart-axis" x1={PAD.left} x2={WIDTH - PAD.right} y1={PAD.top + plotH} y2={PAD.top + plotH} />
      {max === 0 && (
        <text class="chart-label chart-empty" x={PAD.left + plotW / 2} y={PAD.top + plotH / 2} text-anchor="middle">
          nothing yet
        </text>
      )}
    </svg>
  );
};

/** The dashboard's two charts: bytes served per hour and finished downloads per day, over the last week. */
export const DownloadChartsSection: FC<{ charts: DownloadCharts }> = ({ charts }) => {
  const totalBytes = charts.hourlyBytes.reduce((n, h) => n + h.bytes, 0);
  const peak = charts.hourlyBytes.reduce((best, h) => (h.bytes > best.bytes ? h : best), { start: '', bytes: 0 });
  const totalDownloads = charts.dailyDownloads.reduce((n, d) => n + d.downloads, 0);
  const bytesPerDay = charts.dailyDownloads.map((d) => ({
    day: d.day,
    bytes: charts.hourlyBytes.filter((h) => h.start.startsWith(d.day)).reduce((n, h) => n + h.bytes, 0),
  }));
  const hourBars: Bar[] = charts.hourlyBytes.map((h) => ({
    label: `${h.start.slice(0, 13).replace('T', ' ')}:00 UTC`,
    value: h.bytes,
    valueText: formatBytes(h.bytes),
    ...(h.start.endsWith('T00:00:00.000Z') ? { tick: dayLabel(h.start.slice(0, 10)) } : {}),
  }));
  const dayBars: Bar[] = charts.dailyDownloads.map((d) => ({
    label: `${dayLabel(d.day)} ${d.day}`,
    value: d.downloads,
    valueText: `${d.downloads} download${d.downloads === 1 ? '' : 's'}`,
    tick: dayLabel(d.day),
  }));
  return (
    <section aria-labelledby="charts-heading">
      <h2 id="charts-heading">Downloads in the last 7 days</h2>
      <div class="chart-grid-2">
        <figure class="card chart-card">
          <figcaption>Bytes served per hour (UTC)</figcaption>
          <BarChart
            id="chart-bytes"
            title="Bytes served per hour, last 7 days"
            description={
              totalBytes > 0
                ? `${formatBytes(totalBytes)} in total; the busiest hour was ${peak.start.slice(0, 13).replace('T', ' ')}:00 UTC with ${formatBytes(peak.bytes)}.`
                : 'Nothing was served in the last 7 days.'
            }
            bars={hourBars}
            formatAxis={(n) => (n === 0 ? '0' : formatBytes(n))}
          />
        </figure>
        <figure class="card chart-card">
          <figcaption>Finished downloads per day (UTC)</figcaption>
          <BarChart
            id="chart-downloads"
            title="Finished downloads per day, last 7 days"
            description={`${totalDownloads} finished download${totalDownloads === 1 ? '' : 's'} in 7 days: ${charts.dailyDownloads.map((d) => `${dayLabel(d.day)} ${d.downloads}`).join(', ')}.`}
            bars={dayBars}
            formatAxis={(n) => String(Math.round(n))}
          />
        </figure>
      </div>
      <details>
        <summary>Show the numbers</summary>
        <div class="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">Day (UTC)</th>
                <th scope="col">Finished downloads</th>
                <th scope="col">Bytes served</th>
              </tr>
            </thead>
            <tbody>
              {charts.dailyDownloads.map((d, i) => (
                <tr>
                  <td>
                    {dayLabel(d.day)} {d.day}
                  </td>
                  <td>{d.downloads}</td>
                  <td>{formatBytes(bytesPerDay[i]!.bytes)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </details>
      <p>
        <a href="/admin/downloads">All downloads →</a>
      </p>
    </section>
  );
};

/** Room a tick label needs (a short day name at 12px). */
const LABEL_PX = 44;

/**
 * Where each tick's label goes (bar index → centre x): centred in the span up
 * to the next tick (one bar when every bar has a tick), and left out when that
 * span is too narrow for it, so labels never overlap or leave the chart.
 */
function tickLabels(bars: Bar[], step: number): Map<number, number> {
  const ticks = bars.flatMap((b, i) => (b.tick !== undefined ? [i] : []));
  const out = new Map<number, number>();
  ticks.forEach((i, k) => {
    const span = ((ticks[k + 1] ?? bars.length) - i) * step;
    if (span >= LABEL_PX || bars.length <= 31) out.set(i, PAD.left + i * step + span / 2);
  });
  return out;
}

const WEEKDAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];

function dayLabel(day: string): string {
  return `${WEEKDAYS[new Date(`${day}T00:00:00Z`).getUTCDay()]} ${day.slice(8, 10)}`;
}

/** 1, 2 or 5 times a power of ten (bytes: of 1000), at least `v`: round axis values. */
export function niceCeiling(v: number): number {
  if (v <= 0) return 0;
  const power = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * power >= v) return m * power;
  return 10 * power;
}

function fixed(n: number): string {
  return n.toFixed(1);
}
