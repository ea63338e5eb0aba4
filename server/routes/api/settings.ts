/** Settings: the public address Download URLs start with. */
import { createRoute, z } from '@hono/zod-openapi';
import { resolvePublicAddress, settingsPatch, updateSettings } from '../../services/settings.js';
import { PublicAddress } from './schemas.js';
import { apiApp, errors, json, jsonOnly, jsonRequest, rejectAs, type ApiApp, type ApiDeps } from './shared.js';

const tags = ['Settings'];
const Settings = z.object({ publicUrl: PublicAddress });

const read = createRoute({
  method: 'get',
  path: '/',
  tags,
  summary: 'Read the settings',
  responses: { 200: json(Settings, 'The public address'), ...errors },
});

const update = createRoute({
  method: 'patch',
  path: '/',
  tags,
  summary: 'Set or clear the public address',
  description: 'Refused with SETTING_LOCKED while the configuration (MIRROR_PUBLIC_URL) sets it.',
  middleware: [jsonOnly()],
  request: { body: jsonRequest(settingsPatch, '`publicUrl`: an http(s) URL, or null to clear it') },
  responses: { 200: json(Settings, 'The public address now'), ...errors },
});

export function settingsApi(deps: ApiDeps): ApiApp {
  const app = apiApp();
  app.openapi(read, async (c) => c.json({ publicUrl: await resolvePublicAddress(deps) }, 200));
  app.openapi(
    update,
    async (c) => c.json({ publicUrl: await updateSettings(deps, c.get('actor'), c.req.valid('json')) }, 200),
    rejectAs('settings'),
  );
  return app;
}
