import { fileURLToPath } from 'node:url'
import { envName, settingKeys, settingsShape } from './schema.ts'

/** The text of .env.example, made from the settings schema (npm run env-example writes it). */
export function renderEnvExample(): string {
  const out = [
    '# Natter settings: every NATTER_* variable with its default.',
    '# Copy to .env (or export them); a JSON file with the same settings by camelCase key',
    '# can be given with --config FILE or NATTER_CONFIG_FILE. Variables win over the file.',
    '',
  ]
  for (const key of settingKeys) {
    const setting = settingsShape[key]
    const parsed = setting.safeParse(undefined)
    const value = parsed.success && parsed.data !== undefined ? String(parsed.data) : ''
    out.push(`# ${setting.description}`, `${value === '' ? '# ' : ''}${envName(key)}=${value}`, '')
  }
  return out.join('\n')
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.stdout.write(renderEnvExample())
