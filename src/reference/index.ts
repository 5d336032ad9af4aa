export { F32_TOLERANCE, F16_TOLERANCE, MAX_FACTOR, toleranceFor, compareTensors, type TensorComparison, type Tolerance } from './compare.js';
export { erf, erfc, gelu, geluGrad, normalCdf, normalPdf, sigmoid, silu, siluGrad } from './erf.js';
export { expertWeights, referenceStep, toFloat64, type ReferenceInputs, type ReferenceResult } from './layer.js';
export { NEAR_TIE_RELATIVE, routeReference, type ReferenceRouting, type RouteOptions } from './routing.js';
export { auxGradient, expertPairs, finishScale, routerBackward, routerInputGrads, scaled, unitStep, type ExpertWeights, type PairJob, type Scaled } from './terms.js';
