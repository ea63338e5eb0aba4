/** tus requests the upload tests share. */
import http from 'node:http';

export const TUS = { 'Tus-Resumable': '1.0.0' };

/**
 * A PATCH of `size` bytes at offset 0 that stays open: the caller writes the body piece by piece (or stops), and
 * `answered` is the status the server gives (-1 when the connection failed).
 */
export function openPatch(baseUrl: string, id: string, token: string, size: number) {
  const url = new URL(baseUrl);
  const request = http.request({
    host: url.hostname,
    port: url.port,
    path: `/api/v1/uploads/${id}`,
    method: 'PATCH',
    headers: {
      ...TUS,
      Authorization: `Bearer ${token}`,
      'Content-Type': 'application/offset+octet-stream',
      'Upload-Offset': '0',
      'Content-Length': String(size),
    },
    agent: false,
  });
  const answered = new Promise<number>((resolve) => {
    request.on('response', (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    request.on('error', () => resolve(-1));
  });
  return { request, answered };
}
