/** Settings: the public address Download URLs start with. */
import { z } from '@hono/zod-openapi';
import { resolvePublicAddress, settingsPatch, updateSettings } from '../../services/settings.js';
import { PublicAddress } from './schemas.js';
import { apiApp, json, jsonRequest, rejectAs, routes, type ApiApp, type ApiDeps } from './shared.js';

const route = routes('Settings');
const Settings = z.object({ publicUrl: PublicAddress });

const read = route('get', '/', 'Read the settings', { 200: json(Settings, 'The public address') });
const update = route(
  'patch',
  '/',
  'Set or clear the public address',
  { 200: json(Settings, 'The public address now') },
  {
    description: 'Refused with SETTING_LOCKED while the configuration (MIRROR_PUBLIC_URL) sets it.',
    request: { body: jsonRequest(settingsPatch, '`publicUrl`: an http(s) URL, or null to clear it') },
  },
);

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
