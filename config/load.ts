import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import {
  envName,
  launcherEnv,
  type SettingKey,
  type Settings,
  settingKeys,
  settingsSchema,
} from './schema.ts'

const secretKeys = new Set<string>(['jwtSecret', 's3SecretAccessKey', 'adminKeys'])

export class ConfigError extends Error {
  override name = 'ConfigError'
}

export interface LoadedConfig {
  settings: Settings
  /** Things worth a warning that do not stop start-up (unknown variables, unknown file keys). */
  warnings: string[]
}

export interface LoadOptions {
  env?: NodeJS.ProcessEnv
  /** A JSON file of settings by their camelCase key; environment variables win over it. */
  file?: string | undefined
}

/**
 * Reads settings from an optional JSON file and NATTER_* variables, validates them once, and
 * throws a ConfigError whose message is one line naming the offending setting.
 */
export function loadConfig(options: LoadOptions = {}): LoadedConfig {
  const env = options.env ?? process.env
  const warnings: string[] = []
  const raw: Record<string, unknown> = {}
  const source = new Map<string, string>()

  const file = options.file ?? env.NATTER_CONFIG_FILE
  if (file) {
    const path = resolve(file)
    let parsed: unknown
    try {
      parsed = JSON.parse(readFileSync(path, 'utf8'))
    } catch (err) {
      throw new ConfigError(`cannot read config file ${path}: ${(err as Error).message}`)
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new ConfigError(`config file ${path} must hold a JSON object of settings`)
    }
    for (const [key, value] of Object.entries(parsed)) {
      if (!settingKeys.includes(key as SettingKey)) {
        warnings.push(`unknown key "${key}" in config file ${path} is ignored`)
        continue
      }
      raw[key] = value
      source.set(key, `${key} in ${path}`)
    }
  }

  const byEnvName = new Map(settingKeys.map((k) => [envName(k), k]))
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('NATTER_') || value === undefined) continue
    const key = byEnvName.get(name)
    if (key === undefined) {
      if (!launcherEnv.has(name)) warnings.push(`unknown environment variable ${name} is ignored`)
      continue
    }
    raw[key] = value
    source.set(key, name)
  }

  const result = settingsSchema.safeParse(raw)
  if (!result.success) {
    const issue = result.error.issues[0]
    const key = String(issue?.path[0] ?? '')
    const where = source.get(key) ?? envName(key)
    // A secret's value never reaches a log line, even a wrong one.
    const shown = key in raw && !secretKeys.has(key) ? `=${JSON.stringify(raw[key])}` : ''
    throw new ConfigError(`invalid setting ${where}${shown}: ${issue?.message ?? 'invalid'}`)
  }
  return { settings: result.data, warnings }
}
