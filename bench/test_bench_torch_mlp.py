"""A CPU MLP's training step (forward + backward) with PyTorch's activations and with
fastact.torch's, in the same run. Skipped without PyTorch.

Run: pytest bench/test_bench_torch_mlp.py --benchmark-only
     python -m bench.test_bench_torch_mlp        (a table: median step times and the ratio)
"""

from __future__ import annotations

import statistics
import time

import pytest

torch = pytest.importorskip("torch")
ft = pytest.importorskip("fastact.torch")

ACTIVATIONS = ("ReLU", "GELU", "SiLU", "Tanh")
# (batch, width, hidden layers): activation-heavy (wide batch, narrow layers) and matmul-heavy
SHAPES = ((4096, 256, 4), (256, 1024, 4))


def make_step(module: str, implementation: str, batch: int, width: int, depth: int):
    torch.manual_seed(0)
    act = getattr(torch.nn if implementation == "torch" else ft, module)
    layers: list = []
    for _ in range(depth):
        layers += [torch.nn.Linear(width, width), act()]
    net = torch.nn.Sequential(*layers, torch.nn.Linear(width, 10))
    x = torch.randn(batch, width)
    target = torch.randint(0, 10, (batch,))

    def step() -> None:
        net.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(net(x), target).backward()

    return step


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("implementation", ["torch", "fastact"])
@pytest.mark.parametrize("module", ACTIVATIONS)
def test_mlp_step(benchmark, module, implementation, shape):
    step = make_step(module, implementation, *shape)
    step()
    benchmark.group = f"mlp {module} {'x'.join(map(str, shape))}"
    benchmark.pedantic(step, rounds=20, warmup_rounds=2)


def _median(step, rounds: int = 30) -> float:
    step()
    step()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; float32; median of 30 steps")
    print("| activation | batch x width x layers | PyTorch step (ms) | fastact step (ms) | PyTorch / fastact |")
    print("|---|---|---:|---:|---:|")
    for shape in SHAPES:
        for module in ACTIVATIONS:
            t_torch = _median(make_step(module, "torch", *shape))
            t_fast = _median(make_step(module, "fastact", *shape))
            print(f"| {module} | {'x'.join(map(str, shape))} | {t_torch * 1e3:.2f} | {t_fast * 1e3:.2f} "
                  f"| {t_torch / t_fast:.2f}x |")


if __name__ == "__main__":
    main()
