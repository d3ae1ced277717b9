// The MLP's activation as the kernels take it and a model's configuration names it: SiLU
// (SwiGLU, the Llama family), GELU with PyTorch's tanh approximation (GeGLU, Gemma's
// gelu_pytorch_tanh), or the exact GELU (GPT-NeoX's "gelu", nn.GELU()):
//   gelu_tanh(g) = g / 2 * (1 + tanh(sqrt(2 / pi) * (g + 0.044715 g^3))),
//   gelu(g)      = g / 2 * (1 + erf(g / sqrt(2))) = g Phi(g).
// A gated MLP computes act(gate) * up, a plain one act(x) (the kernels' up then null).
#pragma once

namespace spin::kernels {

enum class Activation { Silu, GeluTanh, Gelu };

}  // namespace spin::kernels
