import { afterAll } from 'vitest';
import { tutel } from '../../../baselines/capacity/tutel.js';
import { testGpu } from '../../helpers/gpu.js';
import { capacitySuite } from './capacity-suite.js';

afterAll(async () => (await testGpu()).destroy());

capacitySuite(tutel);
