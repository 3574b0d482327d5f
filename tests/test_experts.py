import torch

from forecaster.experts import ExpertEnsemble, LSTMExpert, fuse


def test_expert_maps_window_to_horizon():
    out = LSTMExpert(n_features=3, horizon=5, hidden_size=8)(torch.randn(4, 30, 3))
    assert out.shape == (4, 5)


def test_fused_output_is_exactly_the_membership_weighted_sum_of_two_experts():
    torch.manual_seed(0)
    ensemble = ExpertEnsemble(2, n_features=2, horizon=3, hidden_size=8).eval()
    x = torch.randn(6, 10, 2)
    u = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.2, 0.8], [0.9, 0.1], [0.3, 0.7]])
    with torch.no_grad():
        y1, y2 = ensemble.experts[0](x), ensemble.experts[1](x)
        fused = fuse(u, ensemble(x))
    expected = u[:, :1] * y1 + u[:, 1:] * y2
    torch.testing.assert_close(fused, expected, rtol=0, atol=1e-7)
    torch.testing.assert_close(fused[0], y1[0], rtol=0, atol=0)


def test_fast_inference_path_equals_forward():
    torch.manual_seed(0)
    for layers in (1, 2):
        ensemble = ExpertEnsemble(3, n_features=2, horizon=4, hidden_size=8, num_layers=layers).eval()
        x = torch.randn(5, 12, 2)
        with torch.no_grad():
            torch.testing.assert_close(ensemble.infer(x), ensemble(x), rtol=0, atol=1e-6)
