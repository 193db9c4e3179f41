//! The cuBLAS product as a custom operation of burn-fusion (the way burn-vision registers its
//! own): fusion stays lazy and keeps the order of operations, and the product runs when fusion
//! executes its queue, on the stream of the thread that registered it, with the operands as
//! burn-cuda tensors ([`super::cublas::product`]).

use burn::tensor::{DType, Shape};
use burn_cubecl::fusion::FusionCubeRuntime;
use burn_fusion::stream::{Operation, OperationStreams};
use burn_fusion::{FusionRuntime, FusionTensor};
use burn_ir::{CustomOpIr, HandleContainer, OperationIr, OperationOutput, TensorIr};
use cubecl::cuda::CudaRuntime;

use super::{cublas, Plain};

/// burn-fusion's runtime over cubecl's CUDA runtime.
type Runtime = FusionCubeRuntime<CudaRuntime>;

/// A float tensor of the fused CUDA backend.
pub(crate) type FusedTensor = FusionTensor<Runtime>;

/// The registered product: which output type to write.
#[derive(Debug, Clone)]
struct Product {
    desc: CustomOpIr,
    output: DType,
}

impl Operation<Runtime> for Product {
    fn execute(&self, handles: &mut HandleContainer<<Runtime as FusionRuntime>::FusionHandle>) {
        let ([a, b], [c]) = self.desc.as_fixed();
        let a = handles.get_float_tensor::<Plain>(a);
        let b = handles.get_float_tensor::<Plain>(b);
        let product = cublas::product(a, b, self.output);
        handles.register_float_tensor::<Plain>(&c.id, product);
    }
}

/// Registers `a @ b` (shapes and types checked by the caller) with output `shape` and `output`.
pub(crate) fn matmul(
    a: FusedTensor,
    b: FusedTensor,
    shape: Vec<usize>,
    output: DType,
) -> FusedTensor {
    let client = a.client.clone();
    let streams = OperationStreams::with_inputs([&a, &b]);
    let c = TensorIr::uninit(client.create_empty_handle(), Shape::from(shape), output);
    let desc = CustomOpIr::new("tell_cublas_matmul", &[a.into_ir(), b.into_ir()], &[c]);
    client
        .register(
            streams,
            OperationIr::Custom(desc.clone()),
            Product { desc, output },
        )
        .output()
}
