"""What a lab submission may use: the default allowlist of the source screen (screen.py).

Deny by default: a module, module attribute, builtin, attribute name, dunder or magic that is
not listed here (or in the assignment's `allow:` config) is a finding. The lists are generous
for autograd labs: torch's tensor and autograd API, torch.nn, NumPy and matplotlib plotting and
array basics, math, and the builtins ordinary notebook code calls. What is left out on purpose:
anything that reaches the interpreter (frames, closures, gc, inspect, ctypes, sys, os, importlib),
runs strings, pickles or files as code (eval/exec/compile, torch.load, np.load, torch.hub,
torch.package, torch.fx, torch.utils, numpy.testing, matplotlib backends), or rewrites
gradients behind autograd's back (tensor and graph hooks, tensor subclasses).
"""

from __future__ import annotations

from dataclasses import dataclass, field


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# -------------------------------------------------------------------------------- modules

# module -> the attributes code may use on it (submodules that are modules themselves are
# listed as modules of their own).
MODULE_MEMBERS: dict[str, frozenset[str]] = {
    "torch": _words("""
        tensor Tensor as_tensor from_numpy is_tensor numel
        linspace arange zeros ones full empty eye zeros_like ones_like full_like empty_like
        rand randn randint rand_like randn_like randint_like normal manual_seed seed
        float float16 float32 float64 double half int int8 int16 int32 int64 long short uint8
        bool complex64 complex128 cfloat cdouble dtype device Size get_default_dtype set_default_dtype
        sum mean prod std var max min amax amin argmax argmin abs absolute sqrt rsqrt square pow
        exp exp2 expm1 log log2 log10 log1p sin cos tan asin acos atan atan2 sinh cosh tanh
        asinh acosh atanh sigmoid relu softmax log_softmax sign sgn floor ceil round trunc frac
        clamp clip maximum minimum fmax fmin where erf erfc lerp logsumexp cumsum cumprod diff
        neg negative reciprocal add sub subtract mul multiply div divide true_divide remainder
        fmod matmul mm bmm mv dot outer inner cross einsum tensordot kron
        cat concat stack hstack vstack dstack split chunk unbind reshape flatten squeeze unsqueeze
        transpose permute t flip roll narrow gather index_select masked_select take repeat_interleave
        meshgrid diag diagonal trace tril triu norm dist cdist allclose isclose equal eq ne lt le
        gt ge isnan isinf isfinite isreal nan_to_num any all sort argsort topk unique count_nonzero
        no_grad enable_grad set_grad_enabled is_grad_enabled inference_mode
        autograd nn optim linalg func special fft pi e inf nan cuda backends
        set_printoptions set_num_threads get_num_threads use_deterministic_algorithms
        broadcast_tensors broadcast_to atleast_1d atleast_2d det logdet inverse pinverse
        heaviside hypot logaddexp cosine_similarity polar real imag angle conj view_as_real
    """),
    "torch.autograd": _words("""
        grad backward Function Variable gradcheck gradgradcheck functional
        no_grad enable_grad set_grad_enabled
    """),
    "torch.autograd.functional": _words("jacobian hessian vjp jvp hvp vhp"),
    "torch.func": _words("grad grad_and_value vmap jacrev jacfwd hessian vjp jvp"),
    "torch.nn": _words("""
        Module Parameter Linear Bilinear Identity Sequential ModuleList ModuleDict ParameterList
        ReLU ReLU6 LeakyReLU ELU SELU GELU SiLU Sigmoid Tanh Softmax LogSoftmax Softplus Softsign
        Hardtanh Mish Threshold PReLU
        MSELoss L1Loss SmoothL1Loss HuberLoss CrossEntropyLoss NLLLoss BCELoss BCEWithLogitsLoss
        KLDivLoss CosineSimilarity PairwiseDistance
        Conv1d Conv2d ConvTranspose2d MaxPool1d MaxPool2d AvgPool2d AdaptiveAvgPool2d Flatten
        Unflatten Dropout BatchNorm1d BatchNorm2d LayerNorm Embedding RNN LSTM GRU
        functional init
    """),
    "torch.nn.functional": _words("""
        relu relu6 leaky_relu elu selu gelu silu sigmoid tanh softmax log_softmax softplus
        hardtanh mse_loss l1_loss smooth_l1_loss huber_loss cross_entropy nll_loss
        binary_cross_entropy binary_cross_entropy_with_logits kl_div linear one_hot normalize
        dropout cosine_similarity pad conv1d conv2d max_pool2d avg_pool2d
    """),
    "torch.nn.init": _words("""
        normal_ uniform_ zeros_ ones_ constant_ eye_ xavier_uniform_ xavier_normal_
        kaiming_uniform_ kaiming_normal_
    """),
    "torch.optim": _words("SGD Adam AdamW RMSprop Adagrad LBFGS lr_scheduler"),
    "torch.optim.lr_scheduler": _words("StepLR ExponentialLR MultiStepLR"),
    "torch.linalg": _words("norm vector_norm matrix_norm det inv solve eig eigh svd qr matrix_rank"),
    "torch.special": _words("expit logit erf erfc gammaln xlogy"),
    "torch.cuda": _words("is_available device_count"),
    "torch.backends": _words("mps"),
    "torch.backends.mps": _words("is_available"),
    "numpy": _words("""
        array asarray ndarray arange linspace logspace zeros ones full empty eye identity
        zeros_like ones_like full_like empty_like meshgrid
        float16 float32 float64 int8 int16 int32 int64 uint8 bool_ complex64 complex128
        pi e inf nan newaxis
        sum mean median prod std var max min amax amin argmax argmin abs absolute sqrt square
        power exp exp2 expm1 log log2 log10 log1p sin cos tan arcsin arccos arctan arctan2 sinh
        cosh tanh sign floor ceil round around trunc clip maximum minimum where cumsum cumprod
        diff gradient dot matmul outer inner cross einsum transpose reshape ravel squeeze
        expand_dims concatenate stack hstack vstack column_stack split array_split tile repeat
        flip roll sort argsort unique allclose isclose array_equal isnan isinf isfinite
        nan_to_num any all count_nonzero linalg random polyfit polyval interp histogram
        set_printoptions round_ heaviside hypot real imag conj
    """),
    "numpy.linalg": _words("norm det inv solve eig eigh svd qr matrix_rank pinv"),
    "numpy.random": _words("""
        seed rand randn randint random normal uniform choice shuffle permutation default_rng
    """),
    "math": _words("""
        pi e tau inf nan sqrt exp log log2 log10 log1p expm1 sin cos tan asin acos atan atan2
        sinh cosh tanh floor ceil fabs isclose isnan isinf isfinite pow hypot factorial comb
        radians degrees erf gamma prod fsum trunc copysign
    """),
    "random": _words("seed random randint uniform choice shuffle gauss sample"),
    "matplotlib.pyplot": frozenset(),   # filled in below
    "matplotlib.pylab": frozenset(),
    "otter": _words("Notebook"),
    "autograd_checks": frozenset(),     # the lab's first cell imports it; nothing of it is used
}

_PLOT = _words("""
    plot scatter bar barh hist imshow contour contourf pcolormesh quiver stem step errorbar
    fill_between axhline axvline hlines vlines text annotate arrow
    xlabel ylabel title suptitle legend grid xlim ylim xticks yticks xscale yscale axis
    figure subplot subplots subplots_adjust tight_layout show close clf cla gca gcf
    colorbar colormaps cm savefig margins box twinx ion ioff pause rcParams style
""")
MODULE_MEMBERS["matplotlib.pyplot"] = _PLOT
MODULE_MEMBERS["matplotlib.pylab"] = _PLOT | _words("linspace arange zeros ones sin cos exp log sqrt pi array")

MODULES = frozenset(MODULE_MEMBERS) | {"matplotlib"}
MODULE_MEMBERS["matplotlib"] = _words("pyplot pylab rcParams")


# ------------------------------------------------------------------------------- builtins

BUILTINS = _words("""
    print range len abs min max sum round pow divmod float int bool str list tuple dict set
    frozenset complex zip enumerate map filter sorted reversed all any isinstance issubclass
    super staticmethod classmethod property object slice iter next repr format chr ord
    hex bin oct callable hash id display
    Exception ValueError TypeError RuntimeError AssertionError NotImplementedError KeyError
    IndexError ZeroDivisionError ArithmeticError StopIteration AttributeError NameError
    True False None Ellipsis NotImplemented
""")

# Dunders honest lab code needs: defining __init__ (and calling super().__init__()), and the
# `if __name__ == "__main__":` idiom.
DUNDER_NAMES = _words("__name__")
DUNDER_DEFS = _words("__init__")
DUNDER_ATTRIBUTES = _words("__init__ __version__")


# ------------------------------------------------------------------------ attribute names

# Attributes code may use on objects the screen cannot resolve statically (tensors, arrays,
# modules, optimisers, figures, strings, lists...). `format` is special-cased (string.Formatter
# field paths reach attributes): only on string literals without attribute or index fields.
ATTRIBUTES = _words("""
    grad data requires_grad requires_grad_ is_leaf grad_fn backward retain_grad retains_grad
    detach detach_ numpy item tolist clone copy_ zero_ fill_ shape size dtype device ndim dim
    numel T mT H view view_as reshape reshape_as flatten squeeze unsqueeze squeeze_ unsqueeze_
    transpose permute t expand expand_as repeat contiguous float double half int long bool
    to type type_as cpu sum mean prod std var max min amax amin argmax argmin abs sqrt rsqrt
    square pow exp log log2 log10 log1p sin cos tan tanh sigmoid relu softmax log_softmax sign
    floor ceil round clamp clamp_ clip neg reciprocal add sub mul div matmul mm dot norm
    add_ sub_ mul_ div_ pow_ neg_ abs_ exp_ log_ sqrt_ uniform_ normal_ random_
    cumsum cumprod diff sort argsort topk all any eq ne lt le gt ge isnan isinf isfinite
    allclose equal masked_fill where gather scatter index_select split chunk unbind flip roll
    apply forward save_for_backward saved_tensors needs_input_grad mark_non_differentiable
    set_materialize_grads next_functions name variable
    parameters named_parameters buffers named_buffers children named_children modules
    named_modules zero_grad train eval weight bias in_features out_features state_dict
    load_state_dict add_module register_buffer register_parameter
    step param_groups lr defaults
    astype ravel tobytes real imag conj nbytes itemsize
    plot scatter bar barh hist imshow contour contourf quiver text annotate legend grid
    set_xlabel set_ylabel set_title set_xlim set_ylim set_xticks set_yticks set_aspect
    axhline axvline fill_between errorbar twinx get_legend_handles_labels
    xlabel ylabel title suptitle show savefig tight_layout subplots_adjust colorbar
    set_data set_label set_color get_figure figure axes
    append extend insert remove pop clear index count sort reverse keys values items get
    update setdefault copy join split rsplit strip lstrip rstrip upper lower capitalize
    title replace startswith endswith find rfind isdigit isalpha zfill center ljust rjust
    splitlines encode decode add discard union intersection difference issubset issuperset
    seed rand randn randint random normal uniform choice shuffle permutation integers
    linalg random
    check check_all export
""")

# IPython magics: line magics and cell magics that mean nothing in a graded run (display and
# timing, their bodies screened as code), and `!pip install ...` / `%pip install ...` lines.
LINE_MAGICS = _words("matplotlib config time timeit precision pprint who whos autoreload load_ext")
CELL_MAGICS = _words("time timeit capture html markdown latex")
LOAD_EXT = _words("autoreload")
INSTALLERS = _words("pip conda")


@dataclass(frozen=True)
class Allowlist:
    """The screen's policy: the defaults above, extended by an assignment's `allow:` config."""

    modules: frozenset[str] = MODULES
    module_members: dict[str, frozenset[str]] = field(default_factory=lambda: dict(MODULE_MEMBERS))
    builtins: frozenset[str] = BUILTINS
    attributes: frozenset[str] = ATTRIBUTES
    dunder_names: frozenset[str] = DUNDER_NAMES
    dunder_defs: frozenset[str] = DUNDER_DEFS
    dunder_attributes: frozenset[str] = DUNDER_ATTRIBUTES
    line_magics: frozenset[str] = LINE_MAGICS
    cell_magics: frozenset[str] = CELL_MAGICS

    def members(self, module: str) -> frozenset[str]:
        return self.module_members.get(module, frozenset())

    def extended(self, extra: dict) -> "Allowlist":
        """The defaults plus what an assignment adds (see `allow:` in the README).

        extra = {"modules": [...], "members": {"torch.utils.data": [...]}, "attributes": [...],
                 "builtins": [...], "dunders": [...], "magics": [...]}"""
        unknown = set(extra) - {"modules", "members", "attributes", "builtins", "dunders", "magics"}
        if unknown:
            raise ValueError(f"unknown key(s) in allow: {', '.join(sorted(unknown))}")
        members = dict(self.module_members)
        for module, names in (extra.get("members") or {}).items():
            members[module] = members.get(module, frozenset()) | frozenset(names)
        modules = self.modules | frozenset(extra.get("modules") or ()) | frozenset(members)
        dunders = frozenset(extra.get("dunders") or ())
        magics = frozenset(extra.get("magics") or ())
        return Allowlist(
            modules=modules, module_members=members,
            builtins=self.builtins | frozenset(extra.get("builtins") or ()),
            attributes=self.attributes | frozenset(extra.get("attributes") or ()),
            dunder_names=self.dunder_names | dunders, dunder_defs=self.dunder_defs | dunders,
            dunder_attributes=self.dunder_attributes | dunders,
            line_magics=self.line_magics | magics, cell_magics=self.cell_magics | magics,
        )


DEFAULT = Allowlist()
