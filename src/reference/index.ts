export { F32_TOLERANCE, F16_TOLERANCE, toleranceFor, compareTensors, type TensorComparison } from './compare.js';
export { erf, erfc, gelu, geluGrad, normalCdf, normalPdf, sigmoid, silu, siluGrad } from './erf.js';
export { referenceStep, toFloat64, type ReferenceInputs, type ReferenceResult } from './layer.js';
export { NEAR_TIE_RELATIVE, routeReference, type ReferenceRouting, type RouteOptions } from './routing.js';
