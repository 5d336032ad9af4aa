import { verboseFlag } from '../src/cli/verbose.js';
import { BaseCommand } from '../src/cli/base.js';
import { gpuFlags } from '../src/cli/flags.js';
import { collectDevices, type DevicesReport } from '../src/measure/devices.js';
import { renderDevices } from '../src/render/devices.js';

export default class Devices extends BaseCommand {
  static override summary = 'List the WebGPU adapters Dawn finds, their features and limits, and the host.';
  static override description =
    'Every adapter Dawn can open (vendor, architecture, device, backend, subgroup sizes), its features, the limits that bound this tool (buffer and binding sizes, workgroup memory and sizes), and the host: CPU, memory, OS, GPUs with driver and VRAM. --adapter and --backend filter the list the way they select an adapter in other commands. Exits 4 with the fix when no adapter is found.';
  static override examples = ['<%= config.bin %> devices', '<%= config.bin %> devices --json', '<%= config.bin %> devices --adapter llvmpipe'];
  // --gemm picks the engine of a layer's GEMMs: nothing here runs one.
  static override flags = { ...(({ gemm: _gemm, allocator: _allocator, ...rest }) => rest)(gpuFlags), verbose: verboseFlag };

  async run(): Promise<DevicesReport> {
    const { flags } = await this.parse(Devices);
    const report = await collectDevices(flags, [this.commandName(), ...this.argv]);
    this.log(renderDevices(report));
    return report;
  }
}
