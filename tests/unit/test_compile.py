"""Regional torch.compile of the transformer blocks: same output as eager, one compile for several sizes."""

import pytest
import torch

from qwenimage.model import QwenImageMMDiT, mmdit_preset
from qwenimage.model.compile import CompileUnavailableError, compile_blocks, compile_problem, is_compiled
from tests.helpers import perturb_


@pytest.mark.slow
def test_compiled_blocks_match_eager_across_sizes():
    problem = compile_problem("cpu")
    if problem is not None:
        pytest.skip(f"inductor cannot compile on this machine: {problem}")
    torch.manual_seed(0)
    model = perturb_(QwenImageMMDiT(mmdit_preset("tiny"))).eval()
    text, sigma = torch.randn(2, 5, 32), torch.tensor([0.9, 0.4])
    inputs = [(torch.randn(2, 16, 64), [(1, 4, 4)]), (torch.randn(2, 24, 64), [(1, 4, 6)])]
    with torch.inference_mode():
        eager = [model(x, text, sigma, shapes) for x, shapes in inputs]
        assert compile_blocks(model)
        assert is_compiled(model)
        torch._dynamo.utils.counters.clear()
        compiled = [model(x, text, sigma, shapes) for x, shapes in inputs]
    for e, c in zip(eager, compiled):
        assert (e - c).abs().max() <= 1e-4
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    assert graphs == 1, f"{graphs} graphs: all blocks and both sizes should share one"


def test_unusable_backend_is_one_clear_line():
    model = QwenImageMMDiT(mmdit_preset("tiny"))
    with pytest.raises(CompileUnavailableError, match=r"^torch.compile \(no_such_backend\) does not work on cpu "
                                                      r"here: .*; run without --compile$") as info:
        compile_blocks(model, backend="no_such_backend")
    assert "\n" not in str(info.value)
    assert not compile_blocks(model, backend="no_such_backend", fallback=True)
    assert not is_compiled(model)


def test_compile_needs_transformer_blocks():
    with pytest.raises(ValueError, match="compile_blocks needs a model with transformer_blocks, got Linear"):
        compile_blocks(torch.nn.Linear(2, 2))
