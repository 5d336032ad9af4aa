import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Dawn rejects older lavapipe ("shaderUniform*ArrayDynamicIndexing required"), README.md#no-gpu. */
export const MIN_MESA_MAJOR = 25;

const LOADER_DIRS = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/lib/x86_64-linux-gnu', '/lib64'];
const ICD_DIRS = ['/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d', '/usr/local/share/vulkan/icd.d'];

/** The Debian 12 fix as one pasteable command (what .ci/run does, and README.md#no-gpu describes). */
export function debian12LavapipeFix(root = process.getuid?.() === 0): string {
  const sudo = root ? '' : 'sudo ';
  const source = 'Types: deb\\nURIs: http://deb.debian.org/debian\\nSuites: bookworm-backports\\nComponents: main\\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\\n';
  return `printf '${source}' | ${sudo}tee /etc/apt/sources.list.d/bookworm-backports.sources && ${sudo}apt-get update && ${sudo}apt-get install -y -t bookworm-backports mesa-vulkan-drivers`;
}

function osRelease(): Record<string, string> {
  try {
    const entries = readFileSync('/etc/os-release', 'utf8')
      .split('\n')
      .map((line) => /^(\w+)=("?)(.*)\2$/.exec(line))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => [m[1], m[3]]);
    return Object.fromEntries(entries);
  } catch {
    return {};
  }
}

function installedMesa(): string | null {
  try {
    const out = execFileSync('dpkg-query', ['-W', '-f=${Version}', 'mesa-vulkan-drivers'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 3000 });
    return out.trim() || null;
  } catch {
    return null;
  }
}

function listIcds(): string[] {
  const files: string[] = [];
  for (const dir of ICD_DIRS) {
    try {
      for (const f of readdirSync(dir)) if (f.endsWith('.json')) files.push(join(dir, f));
    } catch {
      // An absent folder is the common case, not an error.
    }
  }
  return files;
}

/**
 * Why Dawn found no adapter on this machine, as short facts ("what is missing"), followed by
 * the fix for this distribution when known. Linux only; elsewhere the generic help stands.
 */
export function diagnoseNoAdapter(): string[] {
  if (process.platform !== 'linux') return [];
  const facts: string[] = [];
  const override = process.env.VK_DRIVER_FILES || process.env.VK_ICD_FILENAMES;
  if (override) facts.push(`VK_DRIVER_FILES/VK_ICD_FILENAMES is set to "${override}": the Vulkan loader looks only there`);
  if (!LOADER_DIRS.some((dir) => existsSync(join(dir, 'libvulkan.so.1')))) facts.push('the Vulkan loader libvulkan.so.1 is not installed (Debian/Ubuntu package libvulkan1)');
  const icds = listIcds();
  const lavapipe = icds.some((f) => /lvp_icd/.test(f));
  if (icds.length === 0) facts.push(`no Vulkan driver (ICD) is installed: ${ICD_DIRS.join(', ')} hold no *.json`);
  else if (!lavapipe) facts.push(`Vulkan drivers found (${icds.map((f) => f.split('/').pop()).join(', ')}), but none drives a device here and lavapipe (lvp_icd) is absent`);
  const mesa = installedMesa();
  const major = mesa ? Number(/^(?:\d+:)?(\d+)/.exec(mesa)?.[1]) : NaN;
  if (mesa && major < MIN_MESA_MAJOR) facts.push(`mesa-vulkan-drivers ${mesa} is installed; Dawn rejects lavapipe before Mesa ${MIN_MESA_MAJOR}`);
  const os = osRelease();
  const lines = facts.length ? ['On this machine:', ...facts.map((f) => `  - ${f}`)] : [];
  if (os.ID === 'debian' && os.VERSION_ID === '12') lines.push(`Fix on this Debian 12 (Mesa ≥ ${MIN_MESA_MAJOR} from bookworm-backports):`, `  ${debian12LavapipeFix()}`);
  return lines;
}
