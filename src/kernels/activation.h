// The activation of the gated MLP, out = act(gate) * up, as the kernels take it and a model's
// configuration names it: SiLU (SwiGLU, the Llama family) or GELU with PyTorch's tanh
// approximation (GeGLU, Gemma's gelu_pytorch_tanh):
//   gelu_tanh(g) = g / 2 * (1 + tanh(sqrt(2 / pi) * (g + 0.044715 g^3))).
#pragma once

namespace spin::kernels {

enum class Activation { Silu, GeluTanh };

}  // namespace spin::kernels
